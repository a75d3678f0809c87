//! `keyward:plugin/outbound`: HTTP through the host (see runtime/egress.rs).

use crate::runtime::bindings::forge::keyward::plugin::outbound::{Host, Request, Response};
use crate::runtime::bindings::GuestError;
use crate::runtime::call::CallState;

impl Host for CallState {
    async fn fetch(&mut self, req: Request) -> wasmtime::Result<Result<Response, GuestError>> {
        crate::runtime::egress::fetch(&mut self.call, req).await
    }
}
