//! A set of column indices of one table, as a bit set: what an UPDATE sets.
//!
//! The flush keeps one per changed object. A table of up to 64 columns (all
//! but the widest) fits in one word with no allocation, where a list of the
//! changed columns' values cost an allocation per row (W4's UPDATE rows were
//! 1.9 MB of its peak heap at 10,000 rows).

/// Column indices, iterated in ascending order.
#[derive(Clone, Debug)]
pub(crate) enum ColumnSet {
    /// Columns 0..64.
    Word(u64),
    /// Any column; used once a column of index 64 or more is inserted.
    Words(Box<[u64]>),
}

impl Default for ColumnSet {
    fn default() -> Self {
        ColumnSet::Word(0)
    }
}

impl ColumnSet {
    fn words(&self) -> &[u64] {
        match self {
            ColumnSet::Word(w) => std::slice::from_ref(w),
            ColumnSet::Words(ws) => ws,
        }
    }

    /// Adds `column`.
    pub fn insert(&mut self, column: usize) {
        let (word, bit) = (column / 64, column % 64);
        if let ColumnSet::Word(w) = self {
            if word == 0 {
                *w |= 1 << bit;
                return;
            }
            *self = ColumnSet::Words(Box::new([*w]));
        }
        if let ColumnSet::Words(ws) = self {
            if ws.len() <= word {
                let mut grown = std::mem::take(ws).into_vec();
                grown.resize(word + 1, 0);
                *ws = grown.into_boxed_slice();
            }
            ws[word] |= 1 << bit;
        }
    }

    /// Removes `column` (nothing if it is not in the set).
    pub fn remove(&mut self, column: usize) {
        let (word, bit) = (column / 64, column % 64);
        match self {
            ColumnSet::Word(w) if word == 0 => *w &= !(1 << bit),
            ColumnSet::Word(_) => {}
            ColumnSet::Words(ws) => {
                if let Some(w) = ws.get_mut(word) {
                    *w &= !(1 << bit);
                }
            }
        }
    }

    /// Whether `column` is in the set.
    pub fn contains(&self, column: usize) -> bool {
        self.words()
            .get(column / 64)
            .is_some_and(|w| w & (1 << (column % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words().iter().all(|&w| w == 0)
    }

    /// The columns, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(n, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    n * 64 + bit
                })
            })
        })
    }
}

/// Equal when they hold the same columns, whatever the representation.
impl PartialEq for ColumnSet {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.words(), other.words());
        let n = a.len().max(b.len());
        (0..n).all(|i| a.get(i).copied().unwrap_or(0) == b.get(i).copied().unwrap_or(0))
    }
}

impl Eq for ColumnSet {}

#[cfg(test)]
mod tests {
    use super::ColumnSet;

    #[test]
    fn inserts_removes_and_iterates_in_order() {
        let mut s = ColumnSet::default();
        assert!(s.is_empty());
        for c in [5, 0, 63, 5] {
            s.insert(c);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 5, 63]);
        assert!(s.contains(63) && !s.contains(1) && !s.contains(200));
        s.remove(5);
        s.remove(300);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63]);
        s.remove(0);
        s.remove(63);
        assert!(s.is_empty());
    }

    /// Two words: one UPDATE row per changed object carries one.
    #[test]
    fn is_two_words() {
        assert_eq!(std::mem::size_of::<ColumnSet>(), 16);
        assert_eq!(
            std::mem::size_of::<crate::session::persistence::UpdateRow>(),
            40
        );
    }

    #[test]
    fn wide_tables_spill_to_more_words_and_compare_by_content() {
        let mut wide = ColumnSet::default();
        wide.insert(3);
        wide.insert(130);
        assert!(matches!(wide, ColumnSet::Words(_)));
        assert_eq!(wide.iter().collect::<Vec<_>>(), vec![3, 130]);
        assert!(wide.contains(130) && !wide.contains(66));
        wide.remove(130);
        let mut narrow = ColumnSet::default();
        narrow.insert(3);
        assert_eq!(wide, narrow);
        assert_eq!(narrow, wide);
        narrow.insert(4);
        assert_ne!(wide, narrow);
    }
}
