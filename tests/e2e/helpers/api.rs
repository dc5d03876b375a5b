//! The REST API as a client calls it: requests on a [`TestServer`], and the few
//! exchanges most tests begin with (register and log in, make a chat), their answers'
//! shapes checked.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use super::TestServer;
use super::assertions::{
    as_array, assert_chat, assert_json, assert_member, assert_user, id_of, str_of,
};

/// A password every helper-made user has; long enough for the default policy.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestServer {
    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request to `path`, with the bearer token when one is given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        send(self.request(Method::GET, path, Some(token))).await
    }

    /// `GET path` without credentials.
    pub async fn get_anonymous(&self, path: &str) -> Response {
        send(self.request(Method::GET, path, None)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        send(self.request(Method::POST, path, token).json(body)).await
    }

    /// `DELETE path` without a body.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        send(self.request(Method::DELETE, path, Some(token))).await
    }

    /// `DELETE path` with a JSON body.
    pub async fn delete_with(&self, path: &str, token: &str, body: &Value) -> Response {
        send(self.request(Method::DELETE, path, Some(token)).json(body)).await
    }

    /// Sends `body` verbatim as `application/json` (for malformed and oversized bodies).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<String>,
    ) -> Response {
        let body: String = body.into();
        send(
            self.request(method, path, token)
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
    }

    /// Registers a user and returns the User the server answered, checking its shape.
    pub async fn register(&self, username: &str, password: &str) -> Value {
        let response = self
            .post(
                "/auth/register",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        let user = assert_json(response, StatusCode::CREATED).await;
        assert_user(&user);
        user
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self
            .post(
                "/auth/login",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        let body = assert_json(response, StatusCode::OK).await;
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_owned()
    }

    /// Registers `username` with [`PASSWORD`] and logs in: `(user id, access token)`.
    pub async fn user_with_token(&self, username: &str) -> (String, String) {
        let user = self.register(username, PASSWORD).await;
        let token = self.login(username, PASSWORD).await;
        (id_of(&user), token)
    }

    /// Creates a chat, checks the answer's shape and returns the Chat. With no
    /// `members`, the field is left out (an empty list is a 400).
    pub async fn create_chat(&self, token: &str, name: &str, members: &[&str]) -> Value {
        let body = if members.is_empty() {
            json!({"name": name})
        } else {
            json!({"name": name, "members": members})
        };
        let response = self.post("/chats", Some(token), &body).await;
        let chat = assert_json(response, StatusCode::CREATED).await;
        assert_chat(&chat);
        chat
    }

    /// `GET /chats` as the token's user.
    pub async fn chats(&self, token: &str) -> Vec<Value> {
        let chats = assert_json(self.get("/chats", token).await, StatusCode::OK).await;
        let chats = as_array(&chats);
        chats.iter().for_each(assert_chat);
        chats
    }

    /// The ids of the chats `GET /chats` lists for the token's user, in its order.
    pub async fn chat_ids(&self, token: &str) -> Vec<String> {
        self.chats(token).await.iter().map(id_of).collect()
    }

    /// `GET /chats/{chat}/members` as a member, checked and returned.
    pub async fn members(&self, token: &str, chat: &str) -> Vec<Value> {
        let response = self.get(&format!("/chats/{chat}/members"), token).await;
        let members = as_array(&assert_json(response, StatusCode::OK).await);
        members.iter().for_each(assert_member);
        members
    }

    /// The user ids of a chat's members, in the order the server lists them.
    pub async fn member_ids(&self, token: &str, chat: &str) -> Vec<String> {
        self.members(token, chat)
            .await
            .iter()
            .map(|m| str_of(m, "userId"))
            .collect()
    }
}

/// Sends a request, panicking with the reason if there is no HTTP answer at all.
async fn send(request: RequestBuilder) -> Response {
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e:?}"))
}

/// Users named `names`, registered on `node`, all in one new chat the first one owns:
/// the chat's id and each user's (id, token).
pub async fn one_chat(node: &TestServer, names: &[&str]) -> (String, Vec<(String, String)>) {
    let mut users = Vec::with_capacity(names.len());
    for name in names {
        users.push(node.user_with_token(name).await);
    }
    let others: Vec<&str> = users[1..].iter().map(|(id, _)| id.as_str()).collect();
    let chat = id_of(&node.create_chat(&users[0].1, "room", &others).await);
    (chat, users)
}

/// A chat's whole history, oldest first, as message ids.
pub async fn history_ids(node: &TestServer, token: &str, chat: &str) -> Vec<String> {
    let page = assert_json(
        node.get(&format!("/chats/{chat}/messages?limit=100"), token)
            .await,
        StatusCode::OK,
    )
    .await;
    let mut ids: Vec<String> = as_array(&page).iter().map(id_of).collect();
    ids.reverse();
    ids
}
