//! Three services in one process, each on its own loopback address, calling each other over
//! HTTP and gRPC through lonet's model of `lo`.
//!
//! Run it with `cargo run --example microservices --features full`.
//!
//! ```text
//!                 HTTP                      gRPC
//!  client ──────────────▶ gateway ─────────────────────▶ orders
//!               127.0.0.10:8080 (axum)        127.0.0.12:50051 (tonic)
//!                             │                          │
//!                             │ HTTP                     │ HTTP (is the user known?)
//!                             ▼                          │
//!                           users  ◀─────────────────────┘
//!                  127.0.0.11:8080 (axum)
//! ```
//!
//! All of 127.0.0.0/8 is local in the model, as in Linux's local table, so each service binds
//! an address of its own on one port number. Each prints the requests it serves, so the output
//! is the path every request took; the namespace's `lo` and TCP counters come last. Clients'
//! source addresses are 127.0.0.1: Linux picks the source of a connection to 127.x.y.z from the
//! `src 127.0.0.1` of the local route 127.0.0.0/8, and so does lonet.

#[path = "../proto/orders.rs"]
mod orders;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::{ListenerExt, TapIo};
use axum::{Json, Router};
use bytes::Bytes;
use futures::Stream;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lonet::hyper::Connector;
use lonet::net::{TcpListener, TcpStream};
use lonet::stream::TcpListenerStream;
use lonet::Netns;
use orders::orders_client::OrdersClient;
use orders::orders_server::{Orders, OrdersServer};
use orders::{ListOrdersRequest, Order, PlaceOrderRequest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<Connector, Full<Bytes>>;

const GATEWAY: &str = "127.0.0.10:8080";
const USERS: &str = "127.0.0.11:8080";
const ORDERS: &str = "127.0.0.12:50051";

/// An HTTP client over lonet. `Connector::new()` captures the current namespace, so the
/// client's own pool tasks connect in it.
fn http_client() -> HttpClient {
    let mut connector = Connector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The listener, with TCP_NODELAY set on each accepted connection, as most servers do.
fn nodelay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    fn set(stream: &mut TcpStream) {
        let _ = stream.set_nodelay(true);
    }
    listener.tap_io(set as fn(&mut TcpStream))
}

// ---------------------------------------------------------------------------------------------
// users: axum, HTTP/JSON

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u32,
    name: String,
}

async fn users_get(
    State(users): State<Arc<BTreeMap<u32, User>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<u32>,
) -> Result<Json<User>, StatusCode> {
    let found = users.get(&id).cloned();
    let status = if found.is_some() { "200" } else { "404" };
    println!("    [users   {USERS}] GET /users/{id} from {peer} -> {status}");
    found.map(Json).ok_or(StatusCode::NOT_FOUND)
}

async fn users_service(listener: TcpListener, stop: oneshot::Receiver<()>) -> Result<(), BoxError> {
    let users: BTreeMap<u32, User> = [(1, "ada"), (2, "grace")]
        .into_iter()
        .map(|(id, name)| {
            (
                id,
                User {
                    id,
                    name: name.into(),
                },
            )
        })
        .collect();
    let app = Router::new()
        .route("/users/{id}", get(users_get))
        .with_state(Arc::new(users));
    axum::serve(
        nodelay(listener),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.await;
    })
    .await?;
    Ok(())
}

/// `GET http://127.0.0.11:8080/users/{id}`: the user, or `None` for a 404.
async fn fetch_user(client: &HttpClient, id: u32) -> Result<Option<User>, BoxError> {
    let res = client
        .get(format!("http://{USERS}/users/{id}").parse()?)
        .await?;
    if res.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = res.into_body().collect().await?.to_bytes();
    let Json(user) = Json::<User>::from_bytes(&body)?;
    Ok(Some(user))
}

// ---------------------------------------------------------------------------------------------
// orders: tonic, gRPC

struct OrdersSvc {
    orders: Mutex<Vec<Order>>,
    users: HttpClient,
}

#[tonic::async_trait]
impl Orders for OrdersSvc {
    async fn place_order(
        &self,
        req: Request<PlaceOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let PlaceOrderRequest {
            user_id,
            item,
            quantity,
        } = req.into_inner();
        println!(
            "  [orders  {ORDERS}] PlaceOrder(user {user_id}, {quantity} x {item}) from {peer}"
        );
        // Service to service: orders asks users over HTTP whether the user exists.
        match fetch_user(&self.users, user_id).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Status::not_found(format!("no user {user_id}"))),
            Err(e) => return Err(Status::unavailable(format!("users service: {e}"))),
        }
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        let order = Order {
            id: orders.len() as u64 + 1,
            user_id,
            item,
            quantity,
        };
        orders.push(order.clone());
        Ok(Response::new(order))
    }

    type ListOrdersStream = Pin<Box<dyn Stream<Item = Result<Order, Status>> + Send>>;

    async fn list_orders(
        &self,
        req: Request<ListOrdersRequest>,
    ) -> Result<Response<Self::ListOrdersStream>, Status> {
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let user_id = req.into_inner().user_id;
        let mine: Vec<_> = {
            let orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
            orders
                .iter()
                .filter(|o| o.user_id == user_id)
                .cloned()
                .collect()
        };
        println!(
            "  [orders  {ORDERS}] ListOrders(user {user_id}) from {peer} -> stream of {}",
            mine.len()
        );
        Ok(Response::new(Box::pin(futures::stream::iter(
            mine.into_iter().map(Ok),
        ))))
    }
}

async fn orders_service(
    listener: TcpListener,
    stop: oneshot::Receiver<()>,
) -> Result<(), BoxError> {
    let incoming = futures::StreamExt::inspect(TcpListenerStream::new(listener), |conn| {
        if let Ok(stream) = conn {
            let _ = stream.set_nodelay(true);
        }
    });
    let svc = OrdersSvc {
        orders: Mutex::default(),
        users: http_client(),
    };
    Server::builder()
        .add_service(OrdersServer::new(svc))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.await;
        })
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// gateway: axum, calls users over HTTP and orders over gRPC

#[derive(Clone)]
struct Gateway {
    users: HttpClient,
    orders: OrdersClient<Channel>,
}

#[derive(Deserialize)]
struct NewOrder {
    item: String,
    quantity: u32,
}

#[derive(Serialize)]
struct OrderView {
    id: u64,
    item: String,
    quantity: u32,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        OrderView {
            id: o.id,
            item: o.item,
            quantity: o.quantity,
        }
    }
}

#[derive(Serialize)]
struct Summary {
    user: User,
    orders: Vec<OrderView>,
    total_items: u32,
}

fn grpc_status(status: Status) -> (StatusCode, String) {
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    (code, status.message().to_owned())
}

async fn place_order(
    State(mut gw): State<Gateway>,
    Path(user_id): Path<u32>,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<OrderView>), (StatusCode, String)> {
    println!("[gateway {GATEWAY}] POST /users/{user_id}/orders");
    let order = gw
        .orders
        .place_order(PlaceOrderRequest {
            user_id,
            item: new.item,
            quantity: new.quantity,
        })
        .await
        .map_err(grpc_status)?
        .into_inner();
    Ok((StatusCode::CREATED, Json(order.into())))
}

async fn summary(
    State(mut gw): State<Gateway>,
    Path(user_id): Path<u32>,
) -> Result<Json<Summary>, (StatusCode, String)> {
    println!("[gateway {GATEWAY}] GET /users/{user_id}/summary");
    let user = match fetch_user(&gw.users, user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err((StatusCode::NOT_FOUND, format!("no user {user_id}"))),
        Err(e) => return Err((StatusCode::BAD_GATEWAY, e.to_string())),
    };
    let mut stream = gw
        .orders
        .list_orders(ListOrdersRequest { user_id })
        .await
        .map_err(grpc_status)?
        .into_inner();
    let mut orders = Vec::new();
    while let Some(order) = stream.message().await.map_err(grpc_status)? {
        orders.push(OrderView::from(order));
    }
    let total_items = orders.iter().map(|o| o.quantity).sum();
    Ok(Json(Summary {
        user,
        orders,
        total_items,
    }))
}

async fn gateway_service(
    listener: TcpListener,
    stop: oneshot::Receiver<()>,
) -> Result<(), BoxError> {
    let mut connector = Connector::new();
    connector.set_nodelay(true);
    // Lazy: the channel connects on its first call, from tonic's own task, in this namespace.
    let channel =
        Endpoint::from_shared(format!("http://{ORDERS}"))?.connect_with_connector_lazy(connector);
    let gw = Gateway {
        users: http_client(),
        orders: OrdersClient::new(channel),
    };
    let app = Router::new()
        .route("/users/{id}/orders", post(place_order))
        .route("/users/{id}/summary", get(summary))
        .with_state(gw);
    axum::serve(nodelay(listener), app)
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// Binds `addr` and starts `service` on it in its own task, in the current namespace; returns
/// its stop switch and its task.
async fn start<F, Fut>(
    addr: &str,
    service: F,
) -> Result<(oneshot::Sender<()>, JoinHandle<Result<(), BoxError>>), BoxError>
where
    F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(Netns::current().scope(service(listener, stopped)));
    Ok((stop, task))
}

async fn client_call(
    client: &HttpClient,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(), BoxError> {
    println!("\n[client] {method} http://{GATEWAY}{path} {body}");
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{GATEWAY}{path}"))
        .header("content-type", "application/json")
        .body(Full::from(body.to_owned()))?;
    let res = client.request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!("[client] <- {status} {}", String::from_utf8_lossy(&body));
    Ok(())
}

async fn run() -> Result<(), BoxError> {
    // Each service binds before its task starts: no call can race a bind.
    let users = start(USERS, users_service).await?;
    let orders = start(ORDERS, orders_service).await?;
    let gateway = start(GATEWAY, gateway_service).await?;

    let client = http_client();
    client_call(
        &client,
        "POST",
        "/users/1/orders",
        r#"{"item":"book","quantity":2}"#,
    )
    .await?;
    client_call(
        &client,
        "POST",
        "/users/1/orders",
        r#"{"item":"pen","quantity":10}"#,
    )
    .await?;
    client_call(
        &client,
        "POST",
        "/users/2/orders",
        r#"{"item":"lamp","quantity":1}"#,
    )
    .await?;
    client_call(
        &client,
        "POST",
        "/users/42/orders",
        r#"{"item":"ghost","quantity":1}"#,
    )
    .await?;
    client_call(&client, "GET", "/users/1/summary", "").await?;
    client_call(&client, "GET", "/users/2/summary", "").await?;

    // Front to back, each with a graceful shutdown.
    println!();
    for (name, (stop, task)) in [("gateway", gateway), ("orders", orders), ("users", users)] {
        let _ = stop.send(());
        task.await??;
        println!("{name}: shut down gracefully");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let ns = Netns::new();
    ns.clone().scope(run()).await?;

    println!("\n$ ip -s link show lo\n{}", ns.lo_stats());
    println!("$ netstat -s\n{}", ns.tcp_stats());
    println!("$ cat /proc/net/sockstat\n{}", ns.sockstat());
    Ok(())
}
