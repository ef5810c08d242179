//! For the edges of one connected component, the dumps at which adding edges dump by dump
//! merges two parts of it (Kruskal in dump order). Summed over components, the merges at
//! dump k are what dedup removes when dump k joins the first k − 1: the
//! dedup-rate-vs-dumps curve, from the same edges as the decisions.
use std::collections::HashMap;

/// The dump (top 16 bits of a node) at which each merge happens, in dump order.
pub fn merge_dumps(a: &[u64], b: &[u64]) -> Vec<u32> {
    let mut edges: Vec<(u32, u64, u64)> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (((x >> 48).max(y >> 48)) as u32, x, y))
        .collect();
    edges.sort_unstable();
    let mut index: HashMap<u64, u32> = HashMap::with_capacity(edges.len() + 1);
    let mut parent: Vec<u32> = Vec::new();
    let mut id = |n: u64, parent: &mut Vec<u32>| {
        *index.entry(n).or_insert_with(|| {
            parent.push(parent.len() as u32);
            parent.len() as u32 - 1
        })
    };
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let p = parent[x as usize];
            parent[x as usize] = parent[p as usize];
            x = p;
        }
        x
    }
    let mut out = Vec::new();
    for (w, x, y) in edges {
        let (i, j) = (id(x, &mut parent), id(y, &mut parent));
        let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
        if ri != rj {
            parent[ri.max(rj) as usize] = ri.min(rj);
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(dump: u64, x: u64) -> u64 {
        dump << 48 | x
    }

    #[test]
    fn merges_follow_dump_order() {
        // Dump 0: 1–2. Dump 1: 3 joins 1. Dump 2: 4–5 apart, then 5 joins 2 (and 4 with it);
        // the second edge into an already joined part merges nothing.
        let a = [n(0, 2), n(1, 3), n(2, 5), n(2, 5), n(2, 4)];
        let b = [n(0, 1), n(0, 1), n(2, 4), n(0, 2), n(0, 1)];
        let mut w = merge_dumps(&a, &b);
        w.sort_unstable();
        assert_eq!(w, vec![0, 1, 2, 2]);
    }
}
