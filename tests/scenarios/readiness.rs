// Readiness and the try_* calls; peek.

/// try_read() with nothing queued.
pub async fn try_read_nothing_queued() -> Trace {
    let (a, _b) = pair().await;
    let mut buf = [0u8; 8];
    vec![("try_read", kind_only(&a.try_read(&mut buf)))]
}

/// writable/try_write, readable/try_read, the vectored and buf variants, ready(), EOF.
pub async fn ready_and_try_calls() -> Trace {
    let (mut a, b) = pair().await;
    let mut t = Trace::new();
    let mut buf = [0u8; 64];

    t.push(("a writable", done(&a.writable().await)));
    t.push(("a try_write", res(&a.try_write(b"ping"))));
    let n = try_read_when_ready(&b, &mut buf).await;
    t.push(("b try_read", res(&n)));
    t.push((
        "b got",
        ok(String::from_utf8_lossy(&buf[..*n.as_ref().unwrap_or(&0)]).into_owned()),
    ));
    t.push(("b try_read when drained", kind_only(&b.try_read(&mut buf))));

    let slices = [
        io::IoSlice::new(b"ab"),
        io::IoSlice::new(b"cd"),
        io::IoSlice::new(b"ef"),
    ];
    t.push(("a try_write_vectored", res(&a.try_write_vectored(&slices))));
    b.readable().await.expect("readable");
    let (mut x, mut y) = ([0u8; 2], [0u8; 8]);
    let n = loop {
        let mut bufs = [io::IoSliceMut::new(&mut x), io::IoSliceMut::new(&mut y)];
        match b.try_read_vectored(&mut bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                b.readable().await.expect("readable")
            }
            r => break r,
        }
    };
    t.push(("b try_read_vectored", res(&n)));
    t.push((
        "b got",
        ok((
            String::from_utf8_lossy(&x).into_owned(),
            String::from_utf8_lossy(&y[..4]).into_owned(),
        )),
    ));

    a.write_all(b"buffered").await.expect("write_all");
    let mut v: Vec<u8> = Vec::with_capacity(32);
    let n = loop {
        b.readable().await.expect("readable");
        match b.try_read_buf(&mut v) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => break r,
        }
    };
    t.push(("b try_read_buf", res(&n)));
    t.push(("b got", ok(String::from_utf8_lossy(&v).into_owned())));

    let ready = a
        .ready(Interest::READABLE | Interest::WRITABLE)
        .await
        .expect("ready");
    t.push(("a ready: writable", ok(ready.is_writable())));
    t.push(("a ready: readable", ok(ready.is_readable())));

    t.push(("a shutdown", done(&a.shutdown().await)));
    t.push((
        "b try_read at EOF",
        res(&try_read_when_ready(&b, &mut buf).await),
    ));
    t
}

/// peek() shows queued bytes without consuming them.
pub async fn peek_then_read() -> Trace {
    let (mut a, mut b) = pair().await;
    a.write_all(b"hello world").await.expect("write_all");
    let mut t = Trace::new();
    let mut buf = [0u8; 32];
    let n = b.peek(&mut buf).await;
    t.push(("peek", res(&n)));
    t.push((
        "peeked",
        ok(String::from_utf8_lossy(&buf[..*n.as_ref().unwrap_or(&0)]).into_owned()),
    ));
    let mut small = [0u8; 5];
    t.push(("peek into 5 bytes", res(&b.peek(&mut small).await)));
    t.push(("peeked", ok(String::from_utf8_lossy(&small).into_owned())));
    let mut rbuf = [0u8; 32];
    let n = b.read(&mut rbuf).await;
    t.push(("read", res(&n)));
    t.push((
        "read got",
        ok(String::from_utf8_lossy(&rbuf[..*n.as_ref().unwrap_or(&0)]).into_owned()),
    ));
    a.write_all(b"!").await.expect("write_all");
    let n = b.peek(&mut buf).await;
    t.push(("peek the next write", res(&n)));
    t.push((
        "peeked",
        ok(String::from_utf8_lossy(&buf[..*n.as_ref().unwrap_or(&0)]).into_owned()),
    ));
    t
}
