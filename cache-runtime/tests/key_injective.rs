//! Property tests: the key encoding is injective, so two different argument tuples of one
//! function never share a cache entry.

use std::collections::BTreeMap;

use cache_runtime::key::{MAX_KEY_LEN, bound, encode_args};
use proptest::prelude::*;
use serde::Serialize;

/// Strings built from the characters most likely to confuse an encoder.
fn tricky() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just(""),
        Just(":"),
        Just(","),
        Just("%"),
        Just("%3A"),
        Just("'"),
        Just("~"),
        Just("+"),
        Just("["),
        Just("]"),
        Just("{"),
        Just("}"),
        Just("="),
        Just("#"),
        Just("a"),
        Just("1"),
        Just("-"),
        Just("t"),
        Just(" "),
        Just("\n"),
        Just("é"),
        Just("日本"),
        Just("()"),
        Just("x0"),
    ];
    proptest::collection::vec(atoms, 0..5).prop_map(|parts| parts.concat())
}

fn key<A: Serialize>(args: &A) -> String {
    encode_args(args).unwrap().join(",")
}

#[derive(Serialize, Debug, Clone, PartialEq)]
enum Filter {
    All,
    Name(String),
    Pair(String, Option<String>),
    Q { text: String, page: Option<u32> },
}

fn filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        Just(Filter::All),
        tricky().prop_map(Filter::Name),
        (tricky(), proptest::option::of(tricky())).prop_map(|(a, b)| Filter::Pair(a, b)),
        (tricky(), proptest::option::of(any::<u32>()))
            .prop_map(|(text, page)| Filter::Q { text, page }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn moving_a_boundary_changes_the_key(a in tricky(), b in tricky(), c in tricky()) {
        prop_assume!(!b.is_empty());
        // ("a"+"b", "c") vs ("a", "b"+"c"): the classic collision of naive joining.
        prop_assert_ne!(key(&(&format!("{a}{b}"), &c)), key(&(&a, &format!("{b}{c}"))));
    }

    #[test]
    fn string_pairs(x in (tricky(), tricky()), y in (tricky(), tricky())) {
        prop_assume!(x != y);
        prop_assert_ne!(key(&(&x.0, &x.1)), key(&(&y.0, &y.1)));
    }

    #[test]
    fn options_and_lists(
        x in (proptest::option::of(proptest::option::of(tricky())), proptest::collection::vec(tricky(), 0..3)),
        y in (proptest::option::of(proptest::option::of(tricky())), proptest::collection::vec(tricky(), 0..3)),
    ) {
        prop_assume!(x != y);
        prop_assert_ne!(key(&(&x.0, &x.1)), key(&(&y.0, &y.1)));
    }

    #[test]
    fn enums_maps_and_numbers(
        x in (filter(), proptest::collection::btree_map(tricky(), any::<i64>(), 0..3), any::<f64>()),
        y in (filter(), proptest::collection::btree_map(tricky(), any::<i64>(), 0..3), any::<f64>()),
    ) {
        let same = x.0 == y.0 && x.1 == y.1 && x.2.to_bits() == y.2.to_bits();
        prop_assume!(!same);
        // NaN payloads all encode as `NaN`: a cache key cannot tell them apart, nor needs to.
        prop_assume!(!(x.2.is_nan() && y.2.is_nan()));
        let kx = key(&(&x.0, &x.1, &x.2));
        let ky = key(&(&y.0, &y.1, &y.2));
        prop_assert_ne!(kx, ky);
    }

    #[test]
    fn encoded_arguments_never_contain_key_separators(s in tricky(), f in filter()) {
        let parts = encode_args(&(&s, &f, &BTreeMap::from([(s.clone(), 1u8)]))).unwrap();
        for part in parts {
            prop_assert!(!part.contains(':'), "{part:?}");
            prop_assert!(!part.contains('#'), "{part:?}");
            prop_assert!(!part.chars().any(char::is_whitespace), "{part:?}");
        }
    }

    #[test]
    fn bounded_keys_stay_short_and_distinct(a in "[a-z:é]{200,400}", b in "[a-z:é]{200,400}") {
        prop_assume!(a != b);
        let (ka, kb) = (bound(a.clone()), bound(b.clone()));
        prop_assert!(ka.len() <= MAX_KEY_LEN);
        prop_assert_ne!(ka, kb);
    }
}
