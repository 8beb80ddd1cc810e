//! The host emulator must catch the kernel bugs it exists to catch: each planted kernel in
//! kernels/emu/selftest.cu has one, and the error must name it. Correct kernels must pass.

use hipl::cuda::emu::{launch_raw, RawArg};
use hipl::cuda::Device;
use hipl::Error;

fn message(r: hipl::Result<()>) -> String {
    match r {
        Err(Error::Device { msg, .. }) => msg,
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[test]
fn barrier_orders_shared_memory_between_threads() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<u32>(2 * 64).unwrap();
    launch_raw(
        "emu_rotate_with_barrier",
        (2, 1, 1),
        64,
        0,
        &mut [RawArg::BufU32(&mut out)],
    )
    .unwrap();
    let got = dev.download(&out).unwrap();
    for (i, v) in got.iter().enumerate() {
        assert_eq!(*v, ((i % 64 + 1) % 64) as u32 * 10);
    }
}

#[test]
fn missing_barrier_is_reported_as_a_race() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<u32>(64).unwrap();
    let msg = message(launch_raw(
        "emu_rotate_missing_barrier",
        (1, 1, 1),
        64,
        0,
        &mut [RawArg::BufU32(&mut out)],
    ));
    assert!(msg.contains("shared-memory race on `sh`"), "{msg}");
}

#[test]
fn out_of_bounds_global_write_is_reported() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<f32>(100).unwrap();
    let msg = message(launch_raw(
        "emu_fill_unguarded",
        (2, 1, 1),
        64,
        0,
        &mut [RawArg::BufF32(&mut out), RawArg::U32(100)],
    ));
    assert!(
        msg.contains("out-of-bounds global access") && msg.contains("element 100 of 100"),
        "{msg}"
    );
    // The emulator never wrote past the allocation: the buffer is intact up to its end.
    assert!(dev
        .download(&out)
        .unwrap()
        .iter()
        .all(|&v| v == 1.0 || v == 0.0));
}

#[test]
fn out_of_bounds_shared_write_is_reported() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<u32>(64).unwrap();
    let msg = message(launch_raw(
        "emu_shared_overflow",
        (1, 1, 1),
        64,
        0,
        &mut [RawArg::BufU32(&mut out)],
    ));
    assert!(
        msg.contains("out-of-bounds shared access to `sh`: element 64 of 64"),
        "{msg}"
    );
}

#[test]
fn barrier_reached_by_half_the_block_is_reported() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<u32>(64).unwrap();
    let msg = message(launch_raw(
        "emu_divergent_barrier",
        (1, 1, 1),
        64,
        0,
        &mut [RawArg::BufU32(&mut out)],
    ));
    assert!(msg.contains("divergent barrier"), "{msg}");
}

#[test]
fn read_of_unwritten_shared_memory_is_reported() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<f32>(64).unwrap();
    let msg = message(launch_raw(
        "emu_uninitialised_read",
        (1, 1, 1),
        64,
        0,
        &mut [RawArg::BufF32(&mut out)],
    ));
    assert!(msg.contains("uninitialised shared memory `sh`[1]"), "{msg}");
}

#[test]
fn warp_intrinsics_give_the_hardware_results() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<u32>(64 * 5).unwrap();
    launch_raw(
        "emu_warp_intrinsics",
        (1, 1, 1),
        64,
        0,
        &mut [RawArg::BufU32(&mut out)],
    )
    .unwrap();
    let got = dev.download(&out).unwrap();
    let ballot: u32 = (0..32).filter(|l| l % 3 == 0).map(|l| 1u32 << l).sum();
    for t in 0..64 {
        let lane = (t % 32) as u32;
        let row = &got[5 * t..5 * t + 5];
        assert_eq!(row[0], lane ^ 1, "xor shuffle, thread {t}");
        assert_eq!(row[1], ballot, "ballot, thread {t}");
        assert_eq!(row[2], 700, "index shuffle, thread {t}");
        assert_eq!(
            row[3],
            if lane + 4 < 32 { lane + 4 } else { lane },
            "down shuffle, thread {t}"
        );
        assert_eq!(row[4], lane + 1, "inclusive scan, thread {t}");
    }
}

#[test]
fn shuffle_skipped_by_half_the_warp_is_reported() {
    let dev = Device::emulator();
    let mut out = dev.zeros::<u32>(32).unwrap();
    let msg = message(launch_raw(
        "emu_divergent_shuffle",
        (1, 1, 1),
        32,
        0,
        &mut [RawArg::BufU32(&mut out)],
    ));
    assert!(msg.contains("exited") || msg.contains("deadlock"), "{msg}");
}

#[test]
fn argument_of_the_wrong_kind_is_rejected() {
    let msg = message(launch_raw(
        "emu_fill_unguarded",
        (1, 1, 1),
        32,
        0,
        &mut [RawArg::U32(1), RawArg::U32(2)],
    ));
    assert!(
        msg.contains("argument 0: expected kind 'p', got 'u'"),
        "{msg}"
    );
}

#[test]
fn unknown_kernel_is_rejected() {
    let msg = message(launch_raw("no_such_kernel", (1, 1, 1), 32, 0, &mut []));
    assert!(
        msg.contains("no emulated kernel named `no_such_kernel`"),
        "{msg}"
    );
}
