//! The AC sends MORPH object code on the connection's unidirectional bulk stream and every
//! other bottle on the control stream: a device driven by hand over a raw connection
//! records which stream each bottle came on.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use pcxses_core::frame::{push_frame, FrameDecoder};
use pcxses_core::wire::Bottle;
use pcxses_core::{ControllerEvent, Epoch, Limits, Output, MAX_BOTTLE_LEN};
use pcxses_driver::Alarm;
use pcxses_transport_quic::certs::AC_NAME;
use pcxses_transport_quic::ConnectionLimits;
use smol::channel::{unbounded, Sender};
use smol::future::FutureExt;
use smol::Executor;

/// Which stream a bottle came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Control,
    Bulk,
}

/// Reads frames from `recv` into `out`, tagged with `stream`, until the stream ends.
async fn read(mut recv: quinn::RecvStream, stream: Stream, out: Sender<(Stream, Vec<u8>)>) {
    let mut decoder = FrameDecoder::new(MAX_BOTTLE_LEN);
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        let mut input = &buf[..n];
        while let Some(frame) = decoder.decode(&mut input).expect("valid frames") {
            let _ = out.send((stream, frame.to_vec())).await;
        }
    }
}

#[test]
fn object_code_goes_on_the_bulk_stream_and_nothing_else_does() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = ac(&ex, epoch, ConnectionLimits::default()).await;
        let dev0 = join_dev0(&ex, epoch, ac.local_addr, &ac.events).await;

        // dev1, by hand: its bottles in, each with the stream it came on.
        let endpoint = client(&client_tls("dev1"));
        let connecting = endpoint.connect(ac.local_addr, AC_NAME).unwrap();
        let connection = connecting.await.unwrap();
        let (mut control, recv) = connection.open_bi().await.unwrap();
        let (tx, rx) = unbounded();
        let _control = ex.spawn(read(recv, Stream::Control, tx.clone()));
        let accepting = connection.clone();
        let _bulk = ex.spawn(async move {
            if let Ok(recv) = accepting.accept_uni().await {
                read(recv, Stream::Bulk, tx).await;
            }
        });
        let seen: Arc<Mutex<Vec<(Stream, &str)>>> = Arc::default();
        let record = seen.clone();
        let _dev1 = ex.spawn(async move {
            let mut dev1 = device("dev1", 8, &epoch);
            let mut frame = Vec::new();
            let mut alarm = Alarm::new();
            loop {
                let wake_at = loop {
                    match dev1.poll_output() {
                        Output::Transmit(t) => {
                            frame.clear();
                            push_frame(t.bytes, &mut frame);
                            if control.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                        Output::Event(_) => {}
                        Output::Timeout(at) => break at,
                    }
                };
                let received = async { rx.recv().await.ok() }
                    .or(async {
                        alarm.wait(epoch, wake_at).await;
                        None
                    })
                    .await;
                match received {
                    Some((stream, bottle)) => {
                        let kind = Bottle::decode(&bottle, &Limits::DEFAULT).unwrap().kind();
                        record.lock().unwrap().push((stream, kind));
                        let _ = dev1.handle_receive(epoch.now(), &bottle);
                    }
                    None => dev1.handle_timeout(epoch.now()),
                }
            }
        });
        joined(&ac.events, 1).await;

        // dev0 dies: its computation moves to dev1, object code and all.
        drop(dev0.task);
        ac_event(&ac.events, 10, "the migration", |e| {
            matches!(e, ControllerEvent::MigrationStarted { .. })
        })
        .await;
        let has = |stream, kind| seen.lock().unwrap().contains(&(stream, kind));
        eventually(
            10,
            "object code on the bulk stream and the MORPH on control",
            || has(Stream::Bulk, "object_chunk") && has(Stream::Control, "morph"),
        )
        .await;
        for (stream, kind) in seen.lock().unwrap().clone() {
            assert_eq!(
                stream == Stream::Bulk,
                kind == "object_chunk",
                "{kind} on {stream:?}"
            );
        }
    }));
}
