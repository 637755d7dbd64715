//! The `tracing` feature: an event at each stage of the path, named after the
//! kernel function, with the segment or state change in its fields.
//!
//! A binary of its own, not a module of `tests/model`: `tracing` caches each callsite's
//! interest process-wide. While one scoped subscriber (`set_default`) is the only one
//! registered, a callsite first reached on a thread without it, by another test running in the
//! same process, is cached as "never", and the test here could miss that event, depending on
//! which test reached the callsite first. Here the only events are these two tests' own.
#![cfg(feature = "tracing")]

mod common;

use common::bounded;
use lonet::fault::{Fault, Match};
use lonet::net::{TcpListener, TcpStream};
use lonet::Netns;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One event: its name, target and fields as `name=value` text.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    target: String,
    fields: String,
}

/// A subscriber that keeps every event.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Seen>>>);

struct Fields(String);
impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.0.lock().unwrap().push(Seen {
            name: event.metadata().name(),
            target: event.metadata().target().to_string(),
            fields: f.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Collect {
    fn names(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(|s| s.name).collect()
    }
    fn find(&self, name: &str, needle: &str) -> Option<Seen> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == name && s.fields.contains(needle))
            .cloned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_stage_of_an_exchange_is_an_event_named_after_its_kernel_function() {
    let seen = Collect::default();
    let _guard = tracing::subscriber::set_default(seen.clone());
    let ns = Netns::new();
    bounded(
        "exchange",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:7100").await?;
            let (client, accepted) =
                tokio::join!(TcpStream::connect("127.0.0.1:7100"), listener.accept());
            let mut client = client?;
            let (mut server, _) = accepted?;
            client.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).await?;
            std::io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
    let names = seen.names();
    for stage in [
        "dev_queue_xmit",
        "netif_rx",
        "net_rx_action",
        "tcp_v4_rcv",
        "inet_sock_set_state",
    ] {
        assert!(names.contains(&stage), "no {stage} event in {names:?}");
    }
    let syn = seen
        .find("dev_queue_xmit", "flags=S ")
        .expect("the SYN leaving on lo");
    assert_eq!(syn.target, "lonet_runtime");
    assert!(syn.fields.contains("daddr=127.0.0.1:7100"), "{syn:?}");
    assert!(
        syn.fields.contains(&format!("ns={}", ns_id(&syn))),
        "{syn:?}"
    );
    let data = seen
        .find("tcp_v4_rcv", "len=4 ")
        .expect("the 4-byte segment received");
    assert!(data.fields.contains("flags=P."), "{data:?}");
    assert!(
        seen.find("inet_sock_set_state", "newstate=Established")
            .is_some(),
        "the handshake's state change"
    );
}

/// The `ns=` field of an event.
fn ns_id(s: &Seen) -> String {
    s.fields
        .split(' ')
        .find_map(|f| f.strip_prefix("ns="))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn drops_retransmissions_and_resets_are_events_too() {
    let seen = Collect::default();
    let _guard = tracing::subscriber::set_default(seen.clone());
    let ns = Netns::new();
    lonet::time::use_tokio_time(&ns).unwrap();
    bounded(
        "faults",
        ns.clone().scope(async {
            let listener = TcpListener::bind("127.0.0.1:7101").await?;
            let (client, accepted) =
                tokio::join!(TcpStream::connect("127.0.0.1:7101"), listener.accept());
            let mut client = client?;
            let (mut server, _) = accepted?;
            let cut = ns.add_fault(Match::port(7101), Fault::partition())?;
            client.write_all(b"lost").await?;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await; // modeled time
            drop(cut);
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).await?;
            ns.inject_rst(client.local_addr()?, server.local_addr()?)?;
            std::io::Result::Ok(())
        }),
    )
    .await
    .unwrap();
    assert!(seen.find("kfree_skb", "netem_partition").is_some());
    assert!(seen.find("tcp_retransmit_timer", "").is_some());
    assert!(seen.find("tcp_retransmit_skb", "len=4 ").is_some());
    assert!(seen.find("tcp_receive_reset", "").is_some());
}
