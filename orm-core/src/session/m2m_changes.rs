//! [`M2mChanges`]: the many-to-many links an object made or broke since the
//! last flush, in the order they were made.
//!
//! Linking asks whether the same link is already pending (nothing to do) or
//! its opposite is (the two cancel out). A scan per link made linking n
//! objects to one object cost n²/2 comparisons (tagging 20,000 users with
//! one tag took 254 ms, four times as long at each doubling); from
//! [`INDEX_FROM`] changes on, an index by (relationship, object) answers.

use std::rc::Rc;

use crate::fast_hash::FastHashMap;

use super::object::{addr, AnyObj};

/// The number of changes from which the list keeps an index.
const INDEX_FROM: usize = 16;

/// A many-to-many link to add (or remove) at the next flush.
#[derive(Clone)]
pub(crate) struct M2mChange {
    /// The relationship's index in the owner's table.
    pub rel: usize,
    pub target: Rc<dyn AnyObj>,
    pub add: bool,
}

/// (relationship, target's address): what identifies a link from its owner.
type LinkId = (usize, *const ());

fn link_id(rel: usize, target: &Rc<dyn AnyObj>) -> LinkId {
    (rel, addr(target))
}

/// An object's pending many-to-many changes, each link at most once.
/// Boxed, so that the links of the many objects that never change a
/// many-to-many relationship carry one word for it.
#[derive(Default)]
pub(crate) struct M2mChanges(Option<Box<Changes>>);

#[derive(Default)]
struct Changes {
    list: Vec<M2mChange>,
    /// Each change's position in `list`, once it has [`INDEX_FROM`] of
    /// them; dropped when a cancellation shifts the positions, and built
    /// again at the next change.
    index: Option<Box<FastHashMap<LinkId, usize>>>,
}

impl M2mChanges {
    /// Notes that the link `rel` → `target` is made (`add`) or broken: a
    /// new change, nothing if the same one is pending, or the end of the
    /// opposite pending one.
    pub(crate) fn note(&mut self, rel: usize, target: &Rc<dyn AnyObj>, add: bool) {
        self.0
            .get_or_insert_with(Default::default)
            .note(rel, target, add);
    }

    /// The pending changes, in order.
    pub(crate) fn to_vec(&self) -> Vec<M2mChange> {
        self.0.as_ref().map(|c| c.list.clone()).unwrap_or_default()
    }

    /// Forgets every change (flushed).
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
}

impl Changes {
    fn note(&mut self, rel: usize, target: &Rc<dyn AnyObj>, add: bool) {
        let id = link_id(rel, target);
        if self.index.is_none() && self.list.len() >= INDEX_FROM {
            let index = self
                .list
                .iter()
                .enumerate()
                .map(|(pos, c)| (link_id(c.rel, &c.target), pos))
                .collect();
            self.index = Some(Box::new(index));
        }
        let pending = match &self.index {
            Some(index) => index.get(&id).copied(),
            None => self
                .list
                .iter()
                .position(|c| link_id(c.rel, &c.target) == id),
        };
        match pending {
            Some(pos) if self.list[pos].add != add => {
                self.list.remove(pos);
                self.index = None;
            }
            Some(_) => {}
            None => {
                if let Some(index) = &mut self.index {
                    index.insert(id, self.list.len());
                }
                self.list.push(M2mChange {
                    rel,
                    target: target.clone(),
                    add,
                });
            }
        }
    }
}
