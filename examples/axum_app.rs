//! axum on lonet: a small REST service served by `axum::serve` from a `lonet::net::TcpListener`.
//!
//! Run it with `cargo run --example axum_app --features axum`.
//!
//! The app keeps users in memory (`POST /users`, `GET /users/{id}`, `GET /users?name=...`).
//! A hyper-util client creates and reads a few users through `lonet::hyper::Connector`, then the
//! server shuts down gracefully and the namespace's counters are printed.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lonet::hyper::Connector;
use lonet::net::TcpListener;
use lonet::Netns;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u32,
    name: String,
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Deserialize)]
struct Filter {
    name: Option<String>,
}

#[derive(Default)]
struct Db {
    users: Mutex<BTreeMap<u32, User>>,
}

type Shared = Arc<Db>;

async fn create_user(
    State(db): State<Shared>,
    Json(new): Json<NewUser>,
) -> (StatusCode, Json<User>) {
    let mut users = db.users.lock().unwrap_or_else(|e| e.into_inner());
    let id = users.keys().next_back().map_or(1, |last| last + 1);
    let user = User { id, name: new.name };
    users.insert(id, user.clone());
    (StatusCode::CREATED, Json(user))
}

async fn get_user(State(db): State<Shared>, Path(id): Path<u32>) -> Result<Json<User>, StatusCode> {
    let users = db.users.lock().unwrap_or_else(|e| e.into_inner());
    users
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

async fn list_users(State(db): State<Shared>, Query(filter): Query<Filter>) -> Json<Vec<User>> {
    let users = db.users.lock().unwrap_or_else(|e| e.into_inner());
    let matching = users
        .values()
        .filter(|u| filter.name.as_deref().is_none_or(|n| u.name.contains(n)))
        .cloned()
        .collect();
    Json(matching)
}

fn app() -> Router {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user))
        .with_state(Shared::default())
}

async fn call(
    client: &Client<Connector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(), BoxError> {
    let line = format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str())
    );
    let res = client.request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!("{line:<28} -> {status} {}", String::from_utf8_lossy(&body));
    Ok(())
}

async fn run(ns: Netns) -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:3000").await?;
    println!("axum: listening on http://{}\n", listener.local_addr()?);
    // TCP_NODELAY on accepted connections, as most servers set it.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(ns.scope(async move {
        axum::serve(listener, app())
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    }));

    let mut connector = Connector::new();
    connector.set_nodelay(true);
    let client: Client<Connector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let base = "http://localhost:3000";
    for name in ["ada", "grace", "linus"] {
        let req = Request::post(format!("{base}/users"))
            .header("content-type", "application/json")
            .body(Full::from(format!(r#"{{"name":"{name}"}}"#)))?;
        call(&client, req).await?;
    }
    for path in ["/users/2", "/users/9", "/users?name=a", "/users"] {
        call(
            &client,
            Request::get(format!("{base}{path}")).body(Full::default())?,
        )
        .await?;
    }

    let _ = stop.send(());
    server.await??;
    println!("\naxum: shut down gracefully");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let ns = Netns::new();
    ns.clone().scope(run(ns.clone())).await?;
    println!("\n$ ip -s link show lo\n{}", ns.lo_stats());
    println!("$ netstat -s\n{}", ns.tcp_stats());
    Ok(())
}
