use super::*;

fn page(next: &str, rows: usize) -> Page {
    Page {
        next_cursor: next.into(),
        rows,
        update_times: vec![5; rows],
        orders: Vec::new(),
        refunds: Vec::new(),
        rejected: Vec::new(),
    }
}

const W: Window = Window {
    begin_ms: 0,
    end_ms: 10,
};

#[test]
fn the_defences_stop_a_window() {
    let check = |cursor: &str, p: &Page, seen: &mut HashSet<String>, pages: u32| {
        check_page(Stream::Orders, W, cursor, p, seen, pages, 100)
    };
    let mut seen = HashSet::new();
    assert!(check("", &page("5_1", 50), &mut seen, 1).is_ok());
    assert!(check("5_1", &page("5_2", 50), &mut seen, 2).is_ok());
    // The same cursor again, or the one just sent back.
    assert!(check("5_2", &page("5_1", 50), &mut seen, 3).is_err());
    assert!(check("5_3", &page("5_3", 50), &mut HashSet::new(), 1).is_err());
    // An empty page that says there is more.
    assert!(check("", &page("5_9", 0), &mut HashSet::new(), 1).is_err());
    // Records with no cursor to go on with, and an unexpected end marker.
    assert!(check("", &page("", 3), &mut HashSet::new(), 1).is_err());
    assert!(check("", &page("no_more", 3), &mut HashSet::new(), 1).is_err());
    // An empty window answered with an empty cursor (or `data: null`, read as one) ends it.
    assert!(page("", 0).ends_window() && page(" ", 0).ends_window());
    assert!(check("", &page("", 0), &mut HashSet::new(), 1).is_ok());
    assert!(!page("", 3).ends_window() && !page("5_1", 0).ends_window());
    // Too many pages for one window.
    assert!(check("", &page("5_7", 50), &mut HashSet::new(), 101).is_err());
    // The normal end, also on an empty window.
    assert!(check("", &page("nomore", 0), &mut HashSet::new(), 1).is_ok());
}
