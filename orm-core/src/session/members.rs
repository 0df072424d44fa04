//! [`Members`]: the objects of a loaded collection, in order, each once,
//! with a membership test that stays cheap as the collection grows.
//!
//! Adding to a collection (`push`, and the `back_populates` side of a
//! many-to-one assignment) first asks whether the object is already there.
//! A scan of the list per addition made building a collection of n objects
//! cost n²/2 comparisons: 40,000 `push`es onto one parent took 3.1 s, and
//! each doubling of n took four times as long. Once a collection of at
//! least [`INDEX_FROM`] objects is added to, a set of the members'
//! addresses answers instead; below that, a scan of a few pointers is
//! cheaper than hashing (and costs no allocation: most collections are
//! small). A collection that is only loaded and read builds no set.

use std::ops::Deref;
use std::rc::Rc;

use crate::fast_hash::FastHashSet;

use super::object::{addr, AnyObj};

/// The length from which a collection keeps an index of its members.
const INDEX_FROM: usize = 16;

/// A loaded collection's objects, in order, each once.
#[derive(Default)]
pub(crate) struct Members {
    list: Vec<Rc<dyn AnyObj>>,
    /// The addresses of `list`'s objects, from the first addition to a
    /// list of [`INDEX_FROM`] or more. The list holds each object, so no
    /// address is reused while it is a member.
    index: Option<Box<FastHashSet<*const ()>>>,
}

impl Members {
    /// The collection of `list` (as loaded: each object once).
    pub(crate) fn new(list: Vec<Rc<dyn AnyObj>>) -> Self {
        Members { list, index: None }
    }

    /// Whether `obj` is a member.
    pub(crate) fn contains(&self, obj: &Rc<dyn AnyObj>) -> bool {
        match &self.index {
            Some(index) => index.contains(&addr(obj)),
            None => self.list.iter().any(|o| addr(o) == addr(obj)),
        }
    }

    /// Adds `obj` at the end unless it is already a member; whether it was
    /// added.
    pub(crate) fn insert(&mut self, obj: Rc<dyn AnyObj>) -> bool {
        if self.index.is_none() && self.list.len() >= INDEX_FROM {
            self.index = Some(Box::new(self.list.iter().map(addr).collect()));
        }
        if self.contains(&obj) {
            return false;
        }
        if let Some(index) = &mut self.index {
            index.insert(addr(&obj));
        }
        self.list.push(obj);
        true
    }

    /// Removes `obj`, keeping the others' order; whether it was a member.
    pub(crate) fn remove(&mut self, obj: &Rc<dyn AnyObj>) -> bool {
        if let Some(index) = &mut self.index {
            if !index.remove(&addr(obj)) {
                return false;
            }
        }
        let before = self.list.len();
        self.list.retain(|o| addr(o) != addr(obj));
        self.list.len() != before
    }
}

impl Deref for Members {
    type Target = [Rc<dyn AnyObj>];

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}
