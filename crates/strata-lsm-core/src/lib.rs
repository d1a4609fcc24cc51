//! The pure half of the `lsm` table access method: page formats and their
//! images, run packing and compression, bloom filters, column layouts,
//! structural checks, WAL record layouts (page changes and the rows logical
//! decoding reads), row-lock rules and the compaction
//! policy. The extension's `lsm` module re-exports each one.
//!
//! No pgrx, no `pg_sys`: `unsafe` only in the modules marked below, each
//! saying why.

#![deny(unsafe_code)]

#[allow(unsafe_code)] // the cache partition viewed as atomics and buckets in shared memory
pub mod block_cache;
pub mod bloom;
pub mod column_attr;
pub mod column_dict;
pub mod columnar;
#[allow(unsafe_code)] // byte views of the 8-aligned side buffer
pub mod columnar_read;
pub mod compact_page;
pub mod compressed_page;
pub mod format;
pub mod logical_record;
pub mod hint_table;
#[allow(unsafe_code)] // 16-byte chunk copies after bounds checks
pub mod lz4_block;
#[allow(unsafe_code)] // blocking signals on the packer thread (libc)
pub mod pack_thread;
pub mod page_check;
pub mod page_image;
pub mod policy;
pub mod row_lock;
pub mod run_packer;
pub mod run_page;
pub mod wal_record;
