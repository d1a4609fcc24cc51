//! The pgrx glue every varlena argument/result pair of this module shares:
//! an argument type `$arg<'a>` with `unsafe fn from_raw_datum(Datum)`, and a
//! result type `$buf` with `fn into_datum(self) -> Datum`, both mapped to
//! the SQL type `$sql` whose OID `$oid` gives. One macro instead of the same
//! six trait impls per type (`vector`, `bit`, and the next ones); another
//! for the comparison functions of the ordered ones.

macro_rules! varlena_sql_type {
    (@translatable [$($gen:tt)*] $ty:ty, $name:ident, $sql:literal) => {
        // SAFETY: the type is exactly the SQL type named here.
        unsafe impl $($gen)* pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for $ty {
            const TYPE_IDENT: &'static str = concat!("strata::vector::", stringify!($name));
            const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
                pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
            const ARGUMENT_SQL: Result<
                pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
                pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
            > = Ok(pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<
                pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
                pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
            > = Ok(pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
                pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql),
            ));
        }
    };
    ($arg:ident, $buf:ident, $sql:literal, $oid:expr) => {
        impl<'a> pgrx::FromDatum for $arg<'a> {
            unsafe fn from_polymorphic_datum(
                datum: pgrx::pg_sys::Datum,
                is_null: bool,
                _typoid: pgrx::pg_sys::Oid,
            ) -> Option<Self> {
                if is_null || datum.is_null() {
                    None
                } else {
                    // SAFETY: a non-null datum of this SQL type, per the caller.
                    Some(unsafe { $arg::from_raw_datum(datum) })
                }
            }
        }

        // SAFETY: the argument type is only declared for SQL arguments of
        // its type; the datum is detoasted in the function's memory
        // context, which outlives 'fcx.
        unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for $arg<'fcx> {
            unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                // SAFETY: the argument has this SQL type (SqlTranslatable below).
                unsafe { arg.unbox_arg_using_from_datum() }
                    .unwrap_or_else(|| panic!("argument {index} must not be null"))
            }

            unsafe fn unbox_nullable_arg(arg: pgrx::callconv::Arg<'_, 'fcx>) -> pgrx::nullable::Nullable<Self> {
                // SAFETY: as above.
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }

        impl pgrx::IntoDatum for $buf {
            fn into_datum(self) -> Option<pgrx::pg_sys::Datum> {
                Some($buf::into_datum(self))
            }

            fn type_oid() -> pgrx::pg_sys::Oid {
                $oid
            }
        }

        // SAFETY: returns a palloc'd varlena of this type by reference.
        unsafe impl pgrx::callconv::BoxRet for $buf {
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
            ) -> pgrx::datum::Datum<'fcx> {
                // SAFETY: a valid value owned by the current memory context.
                unsafe { fcinfo.return_raw_datum($buf::into_datum(self)) }
            }
        }

        $crate::vector::sql_type::varlena_sql_type!(@translatable [<'a>] $arg<'a>, $arg, $sql);
        $crate::vector::sql_type::varlena_sql_type!(@translatable [] $buf, $buf, $sql);
    };
}

pub(crate) use varlena_sql_type;

/// The btree support of a type ordered by `$order(a, b) -> Ordering`: the
/// six comparison functions and the three-way one, named as pgvector names
/// them (`<type>_lt` … `<type>_cmp`), one macro for `vector`, `halfvec` and
/// `sparsevec`.
macro_rules! comparison_sql {
    ($arg:ident, $order:path; $lt:ident, $le:ident, $eq:ident, $ne:ident, $ge:ident, $gt:ident, $cmp:ident) => {
        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $lt(a: $arg<'_>, b: $arg<'_>) -> bool {
            $order(a, b) == std::cmp::Ordering::Less
        }

        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $le(a: $arg<'_>, b: $arg<'_>) -> bool {
            $order(a, b) != std::cmp::Ordering::Greater
        }

        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $eq(a: $arg<'_>, b: $arg<'_>) -> bool {
            $order(a, b) == std::cmp::Ordering::Equal
        }

        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $ne(a: $arg<'_>, b: $arg<'_>) -> bool {
            $order(a, b) != std::cmp::Ordering::Equal
        }

        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $ge(a: $arg<'_>, b: $arg<'_>) -> bool {
            $order(a, b) != std::cmp::Ordering::Less
        }

        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $gt(a: $arg<'_>, b: $arg<'_>) -> bool {
            $order(a, b) == std::cmp::Ordering::Greater
        }

        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $cmp(a: $arg<'_>, b: $arg<'_>) -> i32 {
            $order(a, b) as i32
        }
    };
}

pub(crate) use comparison_sql;
