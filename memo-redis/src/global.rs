//! The global cache: the one cached functions use when they name none (`cache = STATIC`), and
//! that [`init`](crate::init), [`global`](crate::global()) and [`shutdown`](crate::shutdown) reach.

use crate::cache::Cache;

/// The cache functions use when they name none.
pub(crate) static GLOBAL: Cache = Cache::from_env();
