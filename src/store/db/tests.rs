use super::{Column, Val};

#[test]
fn rows_become_typed_columns_and_a_stray_type_is_refused() {
    let rows = vec![
        vec![Val::from(1), Val::from("a"), Val::Int(None)],
        vec![Val::from(2), Val::Text(None), Val::from(3)],
    ];
    let columns = Column::of_rows(rows).expect("alike rows");
    let types: Vec<&str> = columns.iter().map(Column::sql_type).collect();
    assert_eq!(types, ["int8[]", "text[]", "int8[]"]);
    match &columns[1] {
        Column::Text(v) => assert_eq!(v, &[Some("a".into()), None]),
        Column::Int(_) => panic!("text column read as integers"),
    }
    let stray = vec![vec![Val::from(1)], vec![Val::from("1")]];
    assert!(Column::of_rows(stray).is_none());
    assert!(Column::of_rows(Vec::new()).expect("no rows").is_empty());
}

#[test]
fn built_statements_become_positional_for_sqlite() {
    assert_eq!(
        super::positional("UPDATE t SET a = $1 WHERE s = $2 AND id IN ($3, $4)"),
        "UPDATE t SET a = ? WHERE s = ? AND id IN (?, ?)"
    );
}
