use super::*;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("test JSON is valid")
}

#[test]
fn integers_read_leniently_but_keys_reject_nonsense() {
    let raw = raw(
        r#"{"a": "30", "b": 30.0, "c": " 7 ", "d": "", "e": null, "f": "abc",
                        "g": [1], "h": 1.5, "i": 1e30, "j": true, "k": 18446744073709551615}"#,
    );
    let v = parse(&raw).expect("json");
    let f = Fields::record(&v).expect("object");
    assert_eq!(f.key_int("a"), Ok(Some(30)));
    assert_eq!(f.key_int("b"), Ok(Some(30)));
    assert_eq!(f.key_int("c"), Ok(Some(7)));
    assert_eq!(f.key_int("d"), Ok(None));
    assert_eq!(f.key_int("e"), Ok(None));
    assert_eq!(f.key_int("zz"), Ok(None));
    for bad in ["f", "g", "h", "i", "j", "k"] {
        let err = f.key_int(bad).expect_err(bad);
        assert!(err.starts_with(&format!("{bad} is not a number")), "{err}");
        assert_eq!(f.int(bad), None, "{bad} degrades");
    }
    assert_eq!(f.int_or_zero("f"), 0);
    assert_eq!(f.text("b").as_deref(), Some("30.0"));
    assert_eq!(f.text("j").as_deref(), Some("true"));
    assert_eq!(f.text("d"), None);
}

#[test]
fn ids_must_be_present_and_nonzero() {
    let raw = raw(r#"{"zero": 0, "ok": "2607602240240301", "obj": {"x": 1}}"#);
    let v = parse(&raw).expect("json");
    let f = Fields::record(&v).expect("object");
    assert_eq!(f.id("ok"), Ok(2_607_602_240_240_301));
    assert_eq!(f.id("zero"), Err("zero is missing".to_string()));
    assert_eq!(f.id("none"), Err("none is missing".to_string()));
    assert_eq!(
        f.id("obj"),
        Err(r#"obj is not a number: {"x":1}"#.to_string())
    );
}

#[test]
fn lists_keep_bytes_and_prefer_the_spelling_with_elements() {
    let raw = raw(r#"{"a": [], "b": [ {"x" : 1} , 2 ], "c": null}"#);
    let v = parse(&raw).expect("json");
    let f = Fields::record(&v).expect("object");
    let list = f.list(&["c", "a", "b"]).expect("list");
    let got: Vec<&str> = list.iter().map(|e| e.raw.get()).collect();
    assert_eq!(got, vec![r#"{"x" : 1}"#, "2"]);
    assert_eq!(Fields::of(Some(&list[0].node)).int("x"), Some(1));
    let first_wins = f.list(&["b", "a"]).expect("list");
    assert_eq!(
        first_wins.len(),
        2,
        "a later empty spelling does not replace elements"
    );
    assert!(f.list(&["zz"]).expect("absent").is_empty());
    let bad = super::tests::raw(r#"{"a": {"x": 1}}"#);
    let v = parse(&bad).expect("json");
    let f = Fields::record(&v).expect("object");
    assert_eq!(
        f.list(&["a"]).expect_err("not an array"),
        "a is not an array"
    );
}

#[test]
fn text_borrows_escapes_decode_and_the_last_of_a_twice_given_field_counts() {
    let raw = raw(r#"{"s": "plain", "e": "a\"b\u4e2d", "k\u0031": 1, "d": 1, "d": 2}"#);
    let v = parse(&raw).expect("json");
    let f = Fields::record(&v).expect("object");
    assert!(matches!(
        f.get("s"),
        Some(Node::Str(Cow::Borrowed("plain")))
    ));
    assert_eq!(f.text("e").as_deref(), Some("a\"b中"));
    assert_eq!(f.int("k1"), Some(1));
    assert_eq!(f.int("d"), Some(2));
    assert_eq!(show(&v).chars().count(), 41, "cut at 40 characters");
}

#[test]
fn nesting_past_the_limit_is_refused_not_a_stack_overflow() {
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let raw = RawValue::from_string(deep).expect("valid JSON");
    let err = parse(&raw).expect_err("too deep");
    assert!(
        err.contains("nests deeper") || err.contains("recursion"),
        "{err}"
    );
    let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let raw = RawValue::from_string(ok).expect("valid JSON");
    parse(&raw).expect("within the limit");
}
