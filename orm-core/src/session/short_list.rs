//! A list whose first element is kept inline: for the per-object lists of
//! the flush that nearly always hold none or one element (an object's
//! pending foreign keys, an INSERT's patches), where a `Vec` cost an
//! allocation and a free per object (W5: every post).

/// Elements in insertion order; the first without an allocation.
#[derive(Clone, Debug)]
pub(crate) struct ShortList<T> {
    /// `None` only while `rest` is empty too.
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for ShortList<T> {
    fn default() -> Self {
        ShortList {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> ShortList<T> {
    pub fn push(&mut self, item: T) {
        match self.first {
            None => self.first = Some(item),
            Some(_) => self.rest.push(item),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(&self.rest)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.first.iter_mut().chain(self.rest.iter_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::ShortList;

    #[test]
    fn keeps_insertion_order_across_the_inline_element() {
        let mut list = ShortList::default();
        assert!(list.is_empty());
        for n in [3, 1, 2] {
            list.push(n);
        }
        assert!(!list.is_empty());
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [3, 1, 2]);
        for n in list.iter_mut() {
            *n *= 10;
        }
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [30, 10, 20]);
        list.clear();
        assert!(list.is_empty());
        assert_eq!(list.iter().count(), 0);
        list.push(7);
        assert_eq!(list.iter().copied().collect::<Vec<_>>(), [7]);
    }
}
