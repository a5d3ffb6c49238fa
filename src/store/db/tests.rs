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

mod writer_tests {
    use super::super::Val;

    /// A TEMP table lives on the connection that made it: every later write transaction sees
    /// the one made in the first only when all of them run on the same connection.
    #[tokio::test]
    async fn every_sqlite_write_runs_on_the_writers_own_connection() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = crate::store::Store::connect(&url).await.expect("open");
        let mut tx = store.pool.write_tx("test").await.expect("tx");
        tx.execute("test", "CREATE TEMP TABLE mark (n INTEGER)", &[])
            .await
            .expect("temp table");
        tx.commit("test").await.expect("commit");
        // Reads in between take the pool's other connections.
        let reads = (0..8).map(|_| store.ping());
        futures_util::future::join_all(reads).await;
        for n in 0..8_i64 {
            let mut tx = store.pool.write_tx("test").await.expect("tx");
            tx.execute(
                "test",
                "INSERT INTO temp.mark (n) VALUES ($1)",
                &[Val::from(n)],
            )
            .await
            .expect("the writers' connection holds the temp table");
            tx.commit("test").await.expect("commit");
        }
        store.close().await;
    }
}
