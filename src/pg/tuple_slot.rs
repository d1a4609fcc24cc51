//! A handle for a tuple table slot the executor (or an access method
//! callback) hands over: Strata's code passes [`Slot`] instead of a raw
//! `*mut TupleTableSlot`, made from the pointer only at that boundary
//! ([`Slot::from_raw`], unsafe: its caller vouches that the slot is valid
//! for as long as the handle is used). Functions taking a `Slot` may then
//! read and write the slot's fields through [`Slot::raw`] under that
//! contract.

use pgrx::pg_sys;
use std::ptr::NonNull;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Slot(NonNull<pg_sys::TupleTableSlot>);

impl Slot {
    /// # Safety
    /// `slot` points at a tuple table slot that stays valid (not dropped,
    /// its memory context alive) while the handle and its copies are used.
    pub unsafe fn from_raw(slot: *mut pg_sys::TupleTableSlot) -> Slot {
        Slot(NonNull::new(slot).expect("a tuple table slot"))
    }

    /// The raw pointer, for PostgreSQL's functions and field access (valid
    /// under [`Slot::from_raw`]'s contract).
    pub fn raw(self) -> *mut pg_sys::TupleTableSlot {
        self.0.as_ptr()
    }
}
