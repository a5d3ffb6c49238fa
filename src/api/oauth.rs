//! oauth (being written).
