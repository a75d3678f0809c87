//! Garbage, missing fields and huge parameters: the forge's error shape, never a panic.

use crate::support::*;
use forge_emulator::Flavor;
use reqwest::header::USER_AGENT;

#[tokio::test]
async fn garbage_token_requests_get_error_shapes() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        let bodies: Vec<(&str, Vec<u8>)> = vec![
            ("application/json", b"{not json".to_vec()),
            ("application/json", b"[1,2,3]".to_vec()),
            (
                "application/x-www-form-urlencoded",
                vec![0xff, 0xfe, b'%', b'z', b'&', b'='],
            ),
            ("application/x-www-form-urlencoded", Vec::new()),
            (
                "application/x-www-form-urlencoded",
                format!("code={}", "A".repeat(200_000)).into_bytes(),
            ),
        ];
        for (ct, body) in bodies {
            let r = client()
                .post(emu.token_url())
                .header("content-type", ct)
                .header("accept", "application/json")
                .body(body)
                .send()
                .await
                .expect("token");
            let status = r.status().as_u16();
            let json: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.expect("b")).unwrap_or_default();
            assert!(json["error"].is_string(), "{flavor:?} {ct} {status} {json}");
            let ok = match flavor {
                Flavor::Forgejo => status == 400,
                Flavor::Github => status == 200,
                Flavor::Gitlab => status == 400 || status == 401,
            };
            assert!(ok, "{flavor:?} {status}");
        }
        let r = client()
            .post(emu.token_url())
            .body(vec![b'a'; 2 << 20])
            .send()
            .await
            .expect("big");
        assert_eq!(r.status(), 413);
    }
}

#[tokio::test]
async fn huge_and_odd_query_params_never_panic() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        emu.add_repos("alice", 3);
        let pat = emu.personal_token("alice");
        let huge = "9".repeat(5000);
        for q in [
            format!("page={huge}&per_page={huge}&limit={huge}"),
            "page=-1&per_page=abc&limit=%ff".to_owned(),
            "page=18446744073709551615&limit=50&per_page=100".to_owned(),
        ] {
            let path = if flavor == Flavor::Gitlab {
                "/projects"
            } else {
                "/user/repos"
            };
            let r = client()
                .get(format!("{}{path}?{q}", emu.api_url()))
                .bearer_auth(&pat)
                .header(USER_AGENT, "t")
                .send()
                .await
                .expect("repos");
            let status = r.status().as_u16();
            assert!(
                status == 200 || (flavor == Flavor::Gitlab && status == 400),
                "{flavor:?} {q} {status}"
            );
            let _: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.expect("b")).expect("json body");
        }
        let (status, _, _) =
            authorize(&emu, &[("state", &"s".repeat(6000)), ("scope", &huge)]).await;
        assert!(status == 302 || status == 400);
        let r = client()
            .get(format!("{}/user", emu.api_url()))
            .header("authorization", "Bearer")
            .header(USER_AGENT, "t")
            .send()
            .await
            .expect("me");
        assert_eq!(r.status(), 401);
        let r = client()
            .get(format!("{}/nope", emu.api_url()))
            .header(USER_AGENT, "t")
            .send()
            .await
            .expect("404");
        assert_eq!(r.status(), 404);
    }
}
