//! End-to-end suite: the real server binary driven over HTTP (being written).
