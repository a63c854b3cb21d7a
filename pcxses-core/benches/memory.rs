//! Heap bytes the Controller holds per registered device, with every device joined and no
//! state stored (so nothing of it is LKGS), and how many heap blocks hold them (each costs
//! the allocator's overhead too). Prints one JSON line per size.
//!
//! `cargo bench -p pcxses-core --bench memory`

mod common;

fn main() {
    for n in [10usize, 10_000, 100_000, 1_000_000] {
        let mut kept = None;
        let info = allocation_counter::measure(|| {
            let mut ac = common::new_controller(n);
            let hellos = common::join_all(&mut ac, n);
            drop(hellos);
            kept = Some(ac);
        });
        // `kept` outlives the measurement: what it holds is `bytes_current`.
        let per_device = info.bytes_current as f64 / n as f64;
        let blocks = info.count_current;
        println!(
            r#"{{"devices":{n},"heap_bytes":{},"bytes_per_device":{per_device:.0},"heap_blocks":{blocks}}}"#,
            info.bytes_current
        );
        drop(kept);
    }
}
