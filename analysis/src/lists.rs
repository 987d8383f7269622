//! The small lists of every document (its units, Kanwil, numbers, figures and key terms), kept
//! end to end in one vector per kind. Five heap allocations per document cost more than the
//! lists themselves (each at least 32 bytes with the allocator's header, and a 16-byte slice
//! header in the document); a [`Span`] is 8 bytes and the values sit together.

use crate::figures::Figure;
use crate::text::FastMap;

/// A run of values in one of the [`Lists`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn of<T>(values: &[T], span: Span) -> &[T] {
        let start = span.start as usize;
        values.get(start..start + span.len as usize).unwrap_or(&[])
    }
}

/// A figure as kept: its key's number in [`Lists`]'s key table, and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct KeptFigure {
    key: u32,
    pub value: u64,
}

/// Every document's lists.
#[derive(Clone, Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct Lists {
    units: Vec<u16>,
    kanwil: Vec<u8>,
    numbers: Vec<u64>,
    terms: Vec<u32>,
    figures: Vec<KeptFigure>,
    /// Figure keys (`orang:kabur`), each once.
    figure_keys: Vec<String>,
    figure_key_ids: FastMap<String, u32>,
}

fn push<T: Copy>(values: &mut Vec<T>, new: &[T]) -> Span {
    let span = Span {
        start: values.len() as u32,
        len: new.len() as u32,
    };
    values.extend_from_slice(new);
    span
}

impl Lists {
    pub fn add_units(&mut self, units: &[u16]) -> Span {
        push(&mut self.units, units)
    }
    pub fn add_kanwil(&mut self, kanwil: &[u8]) -> Span {
        push(&mut self.kanwil, kanwil)
    }
    pub fn add_numbers(&mut self, numbers: &[u64]) -> Span {
        push(&mut self.numbers, numbers)
    }
    pub fn add_terms(&mut self, terms: &[u32]) -> Span {
        push(&mut self.terms, terms)
    }
    pub fn add_figures(&mut self, figures: &[Figure]) -> Span {
        let kept: Vec<KeptFigure> = figures
            .iter()
            .map(|f| {
                let next = self.figure_keys.len() as u32;
                let key = *self.figure_key_ids.entry(f.key.clone()).or_insert(next);
                if key == next {
                    self.figure_keys.push(f.key.clone());
                }
                KeptFigure {
                    key,
                    value: f.value,
                }
            })
            .collect();
        push(&mut self.figures, &kept)
    }

    pub fn units(&self, span: Span) -> &[u16] {
        Span::of(&self.units, span)
    }
    pub fn kanwil(&self, span: Span) -> &[u8] {
        Span::of(&self.kanwil, span)
    }
    pub fn numbers(&self, span: Span) -> &[u64] {
        Span::of(&self.numbers, span)
    }
    pub fn terms(&self, span: Span) -> &[u32] {
        Span::of(&self.terms, span)
    }
    pub fn figures(&self, span: Span) -> &[KeptFigure] {
        Span::of(&self.figures, span)
    }
    /// The key of a kept figure (`orang:kabur`).
    pub fn figure_key(&self, figure: &KeptFigure) -> &str {
        self.figure_keys
            .get(figure.key as usize)
            .map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_list_reads_back_as_added() {
        let mut lists = Lists::default();
        let a = lists.add_units(&[3, 7]);
        let empty = lists.add_units(&[]);
        let b = lists.add_units(&[9]);
        assert_eq!(lists.units(a), [3, 7]);
        assert_eq!(lists.units(empty), [] as [u16; 0]);
        assert_eq!(lists.units(b), [9]);
        let f = lists.add_figures(&[
            Figure {
                key: "orang:kabur".into(),
                value: 2,
            },
            Figure {
                key: "ponsel:ditemukan".into(),
                value: 40,
            },
        ]);
        let g = lists.add_figures(&[Figure {
            key: "orang:kabur".into(),
            value: 5,
        }]);
        let read: Vec<(&str, u64)> = lists
            .figures(f)
            .iter()
            .chain(lists.figures(g))
            .map(|x| (lists.figure_key(x), x.value))
            .collect();
        assert_eq!(
            read,
            [
                ("orang:kabur", 2),
                ("ponsel:ditemukan", 40),
                ("orang:kabur", 5)
            ]
        );
        // A key is kept once.
        assert_eq!(lists.figure_keys.len(), 2);
    }
}
