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
        $crate::vector::sql_type::comparison_sql!(@is $arg, $order;
            $lt: Less; $le: Less | Equal; $eq: Equal; $ne: Less | Greater; $ge: Equal | Greater; $gt: Greater);

        #[pgrx::pg_extern(immutable, strict, parallel_safe)]
        fn $cmp(a: $arg<'_>, b: $arg<'_>) -> i32 {
            $order(a, b) as i32
        }
    };
    // one boolean function per name: whether the order is one of those listed
    (@is $arg:ident, $order:path; $($name:ident: $($ord:ident)|+);+) => {
        $(
            #[pgrx::pg_extern(immutable, strict, parallel_safe)]
            fn $name(a: $arg<'_>, b: $arg<'_>) -> bool {
                matches!($order(a, b), $(std::cmp::Ordering::$ord)|+)
            }
        )+
    };
}

pub(crate) use comparison_sql;

/// The six distance functions of a vector type, named as pgvector names
/// them (`l2_distance`, `<type>_l2_squared_distance`, `inner_product`,
/// `<type>_negative_inner_product`, `cosine_distance`, `l1_distance`):
/// `$pair(a, b)` checks that the dimensions match and gives what the
/// kernels of module `$k` (`l2_squared`, `dot`, `cosine_distance`, `l1`)
/// measure. One macro for `vector`, `halfvec` and `sparsevec`.
macro_rules! distance_sql {
    ($arg:ident, $pair:path, $k:ident; $l2:ident, $l2_squared:ident, $ip:ident, $negative_ip:ident, $cosine:ident, $l1:ident) => {
        $crate::vector::sql_type::distance_sql!(@fn $arg, $pair;
            $l2 = "l2_distance": |a, b| ($k::l2_squared(a, b) as f64).sqrt();
            $l2_squared: |a, b| $k::l2_squared(a, b) as f64;
            $ip = "inner_product": |a, b| $k::dot(a, b) as f64;
            $negative_ip: |a, b| -($k::dot(a, b) as f64);
            $cosine = "cosine_distance": |a, b| $k::cosine_distance(a, b);
            $l1 = "l1_distance": |a, b| $k::l1(a, b) as f64);
    };
    // a function per name (and SQL name, where it differs): the distance
    // its closure measures between the pair
    (@fn $arg:ident, $pair:path; $($name:ident $(= $sql:literal)?: |$a:ident, $b:ident| $distance:expr);+) => {
        $(
            #[pgrx::pg_extern(immutable, strict, parallel_safe $(, name = $sql)?)]
            fn $name(a: $arg<'_>, b: $arg<'_>) -> f64 {
                let ($a, $b) = $pair(a, b);
                $distance
            }
        )+
    };
}

pub(crate) use distance_sql;

/// The four array casts to a vector type (from `integer[]`, `real[]`,
/// `double precision[]` and `numeric[]`): SQL function `$sql`, one per
/// element type, over `$from_array(array, typmod, convert)`, where
/// `convert` gives an element as `f32` (a `double precision` beyond its
/// range becomes infinite, which the element checks reject as pgvector
/// does; a `numeric` beyond it is an overflow). One macro for `vector`,
/// `halfvec` and `sparsevec`.
macro_rules! array_casts_sql {
    ($buf:ident, $from_array:path, $sql:literal; $int4:ident, $float4:ident, $float8:ident, $numeric:ident) => {
        $crate::vector::sql_type::array_casts_sql!(@fn $buf, $from_array, $sql;
            $int4: i32 = |x| Ok(x as f32);
            $float4: f32 = Ok;
            $float8: f64 = |x| Ok(x as f32);
            $numeric: pgrx::datum::AnyNumeric =
                |x| f32::try_from(x).map_err(|_| $crate::vector::VectorError::Overflow));
    };
    (@fn $buf:ident, $from_array:path, $sql:literal; $($name:ident: $elem:ty = $convert:expr);+) => {
        $(
            #[pgrx::pg_extern(immutable, strict, parallel_safe, name = $sql)]
            fn $name(array: pgrx::datum::Array<'_, $elem>, typmod: i32, _explicit: bool) -> $buf {
                $from_array(array, typmod, $convert)
            }
        )+
    };
}

pub(crate) use array_casts_sql;

/// The element-wise operators of a dense vector type (`+`, `-`, `*` and
/// `||`): `$k::add`, `sub`, `mul` and `ops::concat` over the operands'
/// elements, the result made by `$result` (which raises an error worded
/// for the type, or checks and builds the new value). One macro for
/// `vector` and `halfvec`.
macro_rules! elementwise_sql {
    ($arg:ident, $buf:ident, $result:path, $k:ident; $add:ident, $sub:ident, $mul:ident, $concat:ident) => {
        $crate::vector::sql_type::elementwise_sql!(@fn $arg, $buf, $result;
            $add: $k::add; $sub: $k::sub; $mul: $k::mul; $concat: $crate::vector::ops::concat);
    };
    (@fn $arg:ident, $buf:ident, $result:path; $($name:ident: $op:path);+) => {
        $(
            #[pgrx::pg_extern(immutable, strict, parallel_safe)]
            fn $name(a: $arg<'_>, b: $arg<'_>) -> $buf {
                $result($op(a.as_slice(), b.as_slice()))
            }
        )+
    };
}

pub(crate) use elementwise_sql;
