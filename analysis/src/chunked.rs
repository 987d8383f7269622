//! A growable list kept in fixed-size chunks. A `Vec` doubles its buffer when it fills, and
//! while it copies, the old and the new buffer both exist: for the engine's million documents
//! that is a passing third more memory than the documents take, which is what the peak is
//! measured at. Chunks never move once allocated, so growing costs one chunk at a time. The
//! engine keeps its documents and its stories this way.

use std::ops::Index;

/// Items per chunk.
const CHUNK: usize = 1 << 14;

/// A list of `T` in chunks of [`CHUNK`].
#[derive(Clone, Debug)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub fn last_mut(&mut self) -> Option<&mut T> {
        self.chunks.last_mut()?.last_mut()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.chunks.iter_mut().flatten()
    }
}

impl<T> std::ops::IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_like_a_vec_across_chunks() {
        let mut c = Chunked::default();
        let n = CHUNK * 2 + 5;
        for i in 0..n {
            c.push(i);
        }
        assert_eq!(c.len(), n);
        assert_eq!(c[CHUNK], CHUNK);
        assert_eq!(c.get(n - 1), Some(&(n - 1)));
        assert_eq!(c.get(n), None);
        assert!(c.iter().copied().eq(0..n));
        if let Some(last) = c.last_mut() {
            *last = 0;
        }
        assert_eq!(c[n - 1], 0);
        assert!(Chunked::<u8>::default().is_empty());
    }
}
