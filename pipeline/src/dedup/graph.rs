//! The cluster step's graph pieces: union-find over document ordinals, the per-dump edge
//! files the curve is computed from, and the shingle-set store for exact-Jaccard checks.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{PipelineError, Result};

/// Union-find over ordinals; the root of a set is its smallest ordinal, i.e. the
/// document the keep rule prefers.
pub(super) struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub(super) fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    pub(super) fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize]; // path halving
            x = p;
        }
        x
    }
    /// Returns whether two sets were merged.
    pub(super) fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi as usize] = lo;
        true
    }
}

/// Edge files, one per dump: an edge lives in the file of the later of its two dumps.
pub(super) struct EdgeFiles {
    writers: Vec<BufWriter<File>>,
    paths: Vec<PathBuf>,
    pub(super) count: u64,
}

impl EdgeFiles {
    pub(super) fn new(dir: &Path, dumps: usize) -> Result<Self> {
        let mut writers = Vec::with_capacity(dumps);
        let mut paths = Vec::with_capacity(dumps);
        for k in 0..dumps {
            let p = dir.join(format!("edges-{k:05}.bin"));
            let f = File::create(&p).map_err(|e| PipelineError::io(&p, e))?;
            writers.push(BufWriter::with_capacity(64 << 10, f));
            paths.push(p);
        }
        Ok(Self {
            writers,
            paths,
            count: 0,
        })
    }

    /// Chains `members` (sorted by ordinal) in dump order, so the members within any
    /// prefix of dumps form a prefix of the chain and stay connected.
    pub(super) fn chain(&mut self, members: &mut [u32], dump_of: &[u16]) -> Result<()> {
        if members.len() < 2 {
            return Ok(());
        }
        members.sort_by_key(|&o| (dump_of[o as usize], o));
        for w in members.windows(2) {
            let k = dump_of[w[1] as usize] as usize;
            let mut rec = [0u8; 8];
            rec[..4].copy_from_slice(&w[0].to_le_bytes());
            rec[4..].copy_from_slice(&w[1].to_le_bytes());
            self.writers[k]
                .write_all(&rec)
                .map_err(|e| PipelineError::io(&self.paths[k], e))?;
            self.count += 1;
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<Vec<PathBuf>> {
        for (mut w, p) in self.writers.into_iter().zip(&self.paths) {
            w.flush().map_err(|e| PipelineError::io(p, e))?;
        }
        Ok(self.paths)
    }
}

/// Every document's sorted shingle keys in one scratch file, read back by ordinal for
/// `verify_jaccard`; 12 bytes per document in memory.
pub(super) struct ShingleStore {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) offset: Vec<u64>,
    pub(super) len: Vec<u32>,
}

impl ShingleStore {
    pub(super) fn read(&self, o: u32, out: &mut Vec<u32>) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let n = self.len[o as usize] as usize;
        let mut bytes = vec![0u8; n * 4];
        self.file
            .read_exact_at(&mut bytes, self.offset[o as usize])
            .map_err(|e| PipelineError::io(&self.path, e))?;
        out.clear();
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Ok(())
    }
}

/// Jaccard similarity of two sorted, distinct key lists.
pub(super) fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_sorted_key_lists() {
        assert_eq!(jaccard(&[1, 2, 3, 4], &[3, 4, 5, 6]), 2.0 / 6.0);
        assert_eq!(jaccard(&[], &[]), 1.0);
        assert_eq!(jaccard(&[1], &[2]), 0.0);
    }

    #[test]
    fn union_find_roots_are_smallest_ordinals() {
        let mut uf = UnionFind::new(6);
        assert!(uf.union(4, 2));
        assert!(uf.union(5, 4));
        assert!(!uf.union(2, 5));
        assert!(uf.union(3, 1));
        assert_eq!(uf.find(5), 2);
        assert_eq!(uf.find(3), 1);
        assert_eq!(uf.find(0), 0);
    }
}
