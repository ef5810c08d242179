//! An external sort: records buffer in memory up to a byte budget, each full buffer is
//! sorted and spilled as a run file, and the runs are merged with a heap. Records are
//! totally ordered (they carry a document ordinal or their whole content), so the output
//! order is the same whatever the budget — only the number of spilled runs changes.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{PipelineError, Result};

/// A record with a little-endian encoding; fixed-size records need no length prefix.
pub trait Record: Ord + Sized {
    fn encode(&self, out: &mut Vec<u8>);
    /// The next record, `None` at the end of the run.
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>>;
    /// Bytes this record holds in memory (for the budget).
    fn mem_size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    u64::from_le_bytes(x)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[..4]);
    u32::from_le_bytes(x)
}

/// Reads exactly `N` bytes, or `None` at a clean end of file.
fn read_fixed<const N: usize>(r: &mut impl Read) -> std::io::Result<Option<[u8; N]>> {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(b))
}

/// `(key, document ordinal)`: a band bucket or a line hash.
impl Record for (u64, u32) {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>> {
        Ok(read_fixed::<12>(r)?.map(|b| (le_u64(&b[..8]), le_u32(&b[8..]))))
    }
}

/// `(exact hash, document ordinal)`.
impl Record for (u128, u32) {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>> {
        Ok(read_fixed::<20>(r)?.map(|b| {
            let mut x = [0u8; 16];
            x.copy_from_slice(&b[..16]);
            (u128::from_le_bytes(x), le_u32(&b[16..]))
        }))
    }
}

/// A line hash: one entry per surviving document containing the line.
impl Record for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>> {
        Ok(read_fixed::<8>(r)?.map(|b| le_u64(&b)))
    }
}

/// `(rank key, id, file, row)`: documents in survivor-rule order.
impl Record for (u16, String, u32, u32) {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&(self.1.len() as u32).to_le_bytes());
        out.extend_from_slice(self.1.as_bytes());
        out.extend_from_slice(&self.2.to_le_bytes());
        out.extend_from_slice(&self.3.to_le_bytes());
    }
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>> {
        let Some(h) = read_fixed::<6>(r)? else { return Ok(None) };
        let len = le_u32(&h[2..6]) as usize;
        let mut id = vec![0u8; len];
        r.read_exact(&mut id)?;
        let id = String::from_utf8(id).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let t = read_fixed::<8>(r)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
        Ok(Some((
            u16::from_le_bytes([h[0], h[1]]),
            id,
            le_u32(&t[..4]),
            le_u32(&t[4..]),
        )))
    }
    fn mem_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.1.capacity()
    }
}

/// `(shuffle key, line)`: training examples in a seeded random order.
impl Record for (u64, String) {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&(self.1.len() as u32).to_le_bytes());
        out.extend_from_slice(self.1.as_bytes());
    }
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>> {
        let Some(h) = read_fixed::<12>(r)? else { return Ok(None) };
        let len = le_u32(&h[8..12]) as usize;
        let mut s = vec![0u8; len];
        r.read_exact(&mut s)?;
        let s = String::from_utf8(s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Some((le_u64(&h[..8]), s)))
    }
    fn mem_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.1.capacity()
    }
}

/// A rank key: records sort ascending as the packed value.
impl Record for u128 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>> {
        Ok(read_fixed::<16>(r)?.map(u128::from_le_bytes))
    }
}

/// `(rank key, size)`: remix's exact-mode ranking of documents within their key.
impl Record for (u128, u64) {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Self>> {
        Ok(read_fixed::<24>(r)?.map(|b| {
            let mut x = [0u8; 16];
            x.copy_from_slice(&b[..16]);
            (u128::from_le_bytes(x), le_u64(&b[16..]))
        }))
    }
}

/// Fewest records per spilled run, so a tiny budget cannot make millions of runs.
const MIN_RUN: usize = 256;

/// Sorts records within `budget` bytes of memory, spilling to `dir`.
pub struct ExternalSorter<R: Record> {
    buf: Vec<R>,
    budget: usize,
    /// Bytes the buffered records own outside the vector (string contents).
    heap: usize,
    dir: PathBuf,
    name: String,
    runs: Vec<PathBuf>,
    spilled_bytes: u64,
}

impl<R: Record> ExternalSorter<R> {
    /// Holds up to `budget` bytes of records in memory (at least 256 records per run).
    pub fn new(dir: &Path, name: &str, budget: usize) -> Self {
        Self {
            buf: Vec::new(),
            budget,
            heap: 0,
            dir: dir.to_owned(),
            name: name.to_owned(),
            runs: Vec::new(),
            spilled_bytes: 0,
        }
    }

    pub fn push(&mut self, r: R) -> Result<()> {
        let slot = std::mem::size_of::<R>();
        let heap = r.mem_size().saturating_sub(slot);
        let fits = (self.buf.len() + 1) * slot + self.heap + heap <= self.budget;
        if !fits && self.buf.len() >= MIN_RUN {
            self.spill()?;
        }
        // Grow by hand: Vec's doubling could overshoot the budget by up to 2×.
        if self.buf.len() == self.buf.capacity() {
            let max = (self.budget.saturating_sub(self.heap) / slot).max(MIN_RUN);
            let want = (self.buf.capacity() * 2).max(1024).min(max).max(self.buf.len() + 1);
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.heap += heap;
        self.buf.push(r);
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        self.buf.sort_unstable();
        let path = self.dir.join(format!("{}-{:05}.run", self.name, self.runs.len()));
        let f = File::create(&path).map_err(|e| PipelineError::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut rec = Vec::with_capacity(64);
        for r in &self.buf {
            rec.clear();
            r.encode(&mut rec);
            w.write_all(&rec).map_err(|e| PipelineError::io(&path, e))?;
            self.spilled_bytes += rec.len() as u64;
        }
        w.flush().map_err(|e| PipelineError::io(&path, e))?;
        // Drop the buffer itself, not just its contents, so the next run starts small.
        self.buf = Vec::new();
        self.heap = 0;
        self.runs.push(path);
        Ok(())
    }

    /// The sorted records. Run files are deleted as the iterator is dropped.
    pub fn finish(mut self) -> Result<Sorted<R>> {
        if self.runs.is_empty() {
            self.buf.sort_unstable();
            return Ok(Sorted {
                mem: std::mem::take(&mut self.buf).into_iter(),
                readers: Vec::new(),
                heap: BinaryHeap::new(),
                runs: Vec::new(),
                spilled: 0,
                error: None,
            });
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        self.buf = Vec::new();
        let mut readers = Vec::with_capacity(self.runs.len());
        for p in &self.runs {
            let f = File::open(p).map_err(|e| PipelineError::io(p, e))?;
            // Read buffers share the budget: a few hundred KB per run is plenty.
            readers.push((BufReader::with_capacity(256 << 10, f), p.clone()));
        }
        let mut s = Sorted {
            mem: Vec::new().into_iter(),
            readers,
            heap: BinaryHeap::new(),
            runs: std::mem::take(&mut self.runs),
            spilled: self.spilled_bytes,
            error: None,
        };
        for i in 0..s.readers.len() {
            if let Some(r) = s.read(i)? {
                s.heap.push(Reverse((r, i)));
            }
        }
        Ok(s)
    }
}

/// Iterator over sorted records.
pub struct Sorted<R: Record> {
    mem: std::vec::IntoIter<R>,
    readers: Vec<(BufReader<File>, PathBuf)>,
    heap: BinaryHeap<Reverse<(R, usize)>>,
    runs: Vec<PathBuf>,
    spilled: u64,
    /// An I/O error met while merging: iteration stops early and leaves it here.
    pub error: Option<PipelineError>,
}

impl<R: Record> Sorted<R> {
    /// Bytes written to run files (0 when everything fit in memory).
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled
    }

    fn read(&mut self, i: usize) -> Result<Option<R>> {
        let (r, path) = &mut self.readers[i];
        R::decode(r).map_err(|e| PipelineError::io(path.clone(), e))
    }

    /// Calls `f` with each run of records whose `key` is equal, in order.
    pub fn for_each_group<K: PartialEq>(
        mut self,
        key: impl Fn(&R) -> K,
        mut f: impl FnMut(&[R]) -> Result<()>,
    ) -> Result<()> {
        let mut group: Vec<R> = Vec::new();
        for r in self.by_ref() {
            if group.first().is_some_and(|g| key(g) != key(&r)) {
                f(&group)?;
                group.clear();
            }
            group.push(r);
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !group.is_empty() {
            f(&group)?;
        }
        Ok(())
    }
}

impl<R: Record> Iterator for Sorted<R> {
    type Item = R;
    fn next(&mut self) -> Option<R> {
        if self.readers.is_empty() {
            return self.mem.next();
        }
        let Reverse((r, i)) = self.heap.pop()?;
        match self.read(i) {
            Ok(Some(n)) => self.heap.push(Reverse((n, i))),
            Ok(None) => {}
            Err(e) => {
                self.error = Some(e);
                self.heap.clear();
            }
        }
        Some(r)
    }
}

impl<R: Record> Drop for Sorted<R> {
    fn drop(&mut self) {
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_and_in_memory_sorts_agree() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| PipelineError::io("tempdir", e))?;
        let recs: Vec<(u64, u32)> = (0..50_000u32)
            .map(|i| (u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1000, i))
            .collect();
        let mut small = ExternalSorter::new(dir.path(), "small", 0);
        let mut big = ExternalSorter::new(dir.path(), "big", 1 << 30);
        for &r in &recs {
            small.push(r)?;
            big.push(r)?;
        }
        assert!(small.runs.len() > 5 && big.runs.is_empty());
        let a: Vec<_> = small.finish()?.collect();
        let b: Vec<_> = big.finish()?.collect();
        let mut want = recs.clone();
        want.sort_unstable();
        assert_eq!(a, want);
        assert_eq!(b, want);
        let mut ids = ExternalSorter::new(dir.path(), "ids", 0);
        for i in (0..10_000u32).rev() {
            ids.push((1u16, format!("doc-{i}"), 0u32, i))?;
        }
        let first: Vec<_> = ids.finish()?.take(2).map(|r| r.1).collect();
        assert_eq!(first, ["doc-0", "doc-1"]);
        // Runs are removed once merged.
        assert_eq!(
            std::fs::read_dir(dir.path())
                .map_err(|e| PipelineError::io("d", e))?
                .count(),
            0
        );
        Ok(())
    }

    #[test]
    fn groups_follow_keys() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| PipelineError::io("tempdir", e))?;
        let mut s = ExternalSorter::new(dir.path(), "g", 0);
        for r in [(2u64, 1u32), (1, 5), (2, 0), (3, 9), (1, 2)] {
            s.push(r)?;
        }
        let mut groups = Vec::new();
        s.finish()?.for_each_group(
            |r| r.0,
            |g| {
                groups.push(g.iter().map(|r| r.1).collect::<Vec<_>>());
                Ok(())
            },
        )?;
        assert_eq!(groups, vec![vec![2, 5], vec![0, 1], vec![9]]);
        Ok(())
    }
}
