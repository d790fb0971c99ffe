//! Property tests: the key encoding is injective, so two different argument tuples of one
//! function never share a cache entry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

#[derive(Serialize)]
struct Nested {
    ids: Option<Vec<HashSet<String>>>,
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Equal hash maps and sets give one key, whatever order they iterate in (each
    /// `HashMap` has its own random hasher, and the second is filled backwards);
    /// different ones give different keys.
    #[test]
    fn hash_maps_and_sets_are_encoded_canonically(
        x in proptest::collection::btree_map(tricky(), any::<i64>(), 0..8),
        y in proptest::collection::btree_map(tricky(), any::<i64>(), 0..8),
    ) {
        let forward: HashMap<String, i64> = x.clone().into_iter().collect();
        let backward: HashMap<String, i64> = x.clone().into_iter().rev().collect();
        prop_assert_eq!(key(&(&forward, 1u8)), key(&(&backward, 1u8)));
        let other: HashMap<String, i64> = y.clone().into_iter().collect();
        prop_assert_eq!(x == y, key(&(&forward,)) == key(&(&other,)));

        let set_x: BTreeSet<String> = x.keys().cloned().collect();
        let set_y: BTreeSet<String> = y.keys().cloned().collect();
        let hs_forward: HashSet<String> = set_x.iter().cloned().collect();
        let hs_backward: HashSet<String> = set_x.iter().rev().cloned().collect();
        prop_assert_eq!(key(&(&hs_forward,)), key(&(&hs_backward,)));
        let hs_other: HashSet<String> = set_y.iter().cloned().collect();
        prop_assert_eq!(set_x == set_y, key(&(&hs_forward,)) == key(&(&hs_other,)));
        // Nested in a struct, an option and a vector, and as a map's values.
        let nested = |s: &HashSet<String>| key(&(&Nested { ids: Some(vec![s.clone()]) },));
        prop_assert_eq!(nested(&hs_forward), nested(&hs_backward));
        let of_sets = |m: &BTreeMap<String, i64>| -> HashMap<i64, HashSet<String>> {
            m.iter().map(|(k, v)| (*v, HashSet::from([k.clone()]))).collect()
        };
        prop_assert_eq!(key(&(&of_sets(&x),)), key(&(&of_sets(&x),)));
    }

    /// A vector's order is its meaning: only sets and maps are sorted.
    #[test]
    fn vectors_keep_their_order(v in proptest::collection::vec(tricky(), 2..5)) {
        let mut reversed = v.clone();
        reversed.reverse();
        prop_assume!(reversed != v);
        prop_assert_ne!(key(&(&v,)), key(&(&reversed,)));
    }
}
