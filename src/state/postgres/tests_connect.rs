//! PostgreSQL only: connecting. TLS as libpq's `sslmode` means it, against
//! a cluster serving a certificate of a CA the test made; a closed port;
//! a restarted server; no password in any message.

use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::*;
use crate::state::pg_cluster::{self, PgCluster};
use crate::state::Ledger;

const PASSWORD: &str = "hunter2-never-shown";

/// A CA (its PEM) and a server certificate and key it signed for
/// 127.0.0.1 and localhost.
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "snapwarden test CA");
    let ca = params.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params")
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

async fn connect(url: &str) -> Result<PgLedger> {
    PgLedger::connect(url, Some(&Secret::new(PASSWORD)), PgOptions::default()).await
}

/// Whether the ledger's own connection is encrypted.
async fn encrypted(l: &PgLedger) -> bool {
    l.query_for_tests("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        == vec!["t".to_string()]
}

fn no_password(e: &StateError) -> String {
    let text = e.to_string();
    assert!(
        !text.contains(PASSWORD),
        "the password in a message: {text}"
    );
    assert!(
        !text.contains("hunter2"),
        "the password in a message: {text}"
    );
    text
}

#[tokio::test]
async fn sslmode_is_honoured_as_libpq_does() {
    if pg_cluster::skip_pg() {
        return;
    }
    let (ca, cert, key) = certificates();
    let cluster = PgCluster::start_with_tls(&cert, &key).expect("a cluster with TLS");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).expect("write CA");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write empty");
    let base = cluster.url("postgres");
    let root = format!("sslrootcert={}", ca_path.display());
    // The password is in the URL too: it must not show anywhere.
    let with_password = base.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);

    // verify-full with the CA: encrypted, name checked.
    let l = connect(&format!("{with_password}?sslmode=verify-full&{root}"))
        .await
        .expect("verify-full with its CA");
    assert!(encrypted(&l).await);
    assert!(
        !Ledger::location(&l).contains(PASSWORD),
        "{}",
        Ledger::location(&l)
    );
    // verify-full without it: the Mozilla roots do not know the test CA.
    let err = connect(&format!("{with_password}?sslmode=verify-full"))
        .await
        .expect_err("an unknown issuer");
    let text = no_password(&err);
    assert!(
        text.contains("127.0.0.1")
            && text.contains("certificate")
            && text.contains("UnknownIssuer"),
        "{text}"
    );
    // A name the certificate does not carry (the address still 127.0.0.1):
    // verify-full refuses, verify-ca checks only the chain.
    let port = cluster.port();
    let other_name =
        format!("postgres://postgres@db.invalid:{port}/postgres?hostaddr=127.0.0.1&{root}");
    let err = connect(&format!("{other_name}&sslmode=verify-full"))
        .await
        .expect_err("a name mismatch");
    assert!(no_password(&err).contains("not valid for name"), "{err}");
    let l = connect(&format!("{other_name}&sslmode=verify-ca"))
        .await
        .expect("verify-ca ignores the name");
    assert!(encrypted(&l).await);
    // require: encrypted, nothing verified; prefer (the default) too.
    for mode in ["?sslmode=require", "?sslmode=prefer", ""] {
        let l = connect(&format!("{base}{mode}")).await.expect(mode);
        assert!(encrypted(&l).await, "{mode}");
    }
    // disable: plain.
    let l = connect(&format!("{base}?sslmode=disable"))
        .await
        .expect("disable");
    assert!(!encrypted(&l).await);
    // A root certificate file that is missing or empty is named.
    for (path, says) in [
        (dir.path().join("nope.pem"), "nope.pem"),
        (empty.clone(), "no certificate"),
    ] {
        let err = connect(&format!(
            "{with_password}?sslmode=verify-full&sslrootcert={}",
            path.display()
        ))
        .await
        .expect_err("no roots");
        let text = no_password(&err);
        assert!(
            text.contains(says) && text.contains(&path.display().to_string()),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_closed_port_fails_fast_and_says_where() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://snap:{PASSWORD}@127.0.0.1:{port}/ledger?sslmode=disable");
    let started = Instant::now();
    let err = connect(&url).await.expect_err("nobody listens");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let text = no_password(&err);
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("cannot connect"),
        "{text}"
    );
}

/// A connection the server closed is opened again on the next call.
#[tokio::test]
async fn a_restarted_server_is_reconnected() {
    if pg_cluster::skip_pg() {
        return;
    }
    let cluster = PgCluster::start().expect("a private cluster");
    let l = connect(&format!("{}?sslmode=disable", cluster.url("postgres")))
        .await
        .expect("connect");
    l.last_slot("db").await.expect("before the restart");
    l.probe_writable().await.expect("probe before");
    cluster.restart("fast").expect("restart");
    // The call that finds the connection broken may fail; the next works.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    loop {
        match l.last_slot("db").await {
            Ok(_) => break,
            Err(e) => {
                failures += 1;
                assert!(
                    failures <= 1 && Instant::now() < deadline,
                    "still failing after a reconnect: {e}"
                );
            }
        }
    }
    let probe = l.probe_writable().await;
    if probe.is_err() {
        l.probe_writable().await.expect("the probe reconnects too");
    }
}

/// The password comes from the argument (the config's password file or
/// variable) or else from the URL, and a refused one is not shown.
#[tokio::test]
async fn the_password_is_sent_and_never_shown() {
    if pg_cluster::skip_pg() {
        return;
    }
    let cluster = PgCluster::start().expect("a private cluster");
    cluster
        .psql(
            "postgres",
            &format!("CREATE ROLE snap LOGIN PASSWORD '{PASSWORD}'"),
        )
        .expect("a role with a password");
    cluster
        .psql("postgres", "CREATE DATABASE ledger OWNER snap")
        .expect("its database");
    // As PostgreSQL 15 and later have it by default.
    cluster
        .psql("postgres", "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .expect("no tables in public for everyone");
    // The superuser (the harness's psql) stays trusted; everyone else
    // must give a password.
    std::fs::write(
        cluster.data_dir().join("pg_hba.conf"),
        "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("write pg_hba.conf");
    cluster.restart("fast").expect("restart with the new rules");
    let url = format!(
        "postgres://snap@127.0.0.1:{}/ledger?sslmode=disable",
        cluster.port()
    );

    // A role that may not create tables is told so, with where.
    let public = format!(
        "postgres://snap@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port()
    );
    let err = connect(&public).await.expect_err("no right to create");
    let text = no_password(&err);
    assert!(
        text.contains("cannot migrate the schema") && text.contains("snap@127.0.0.1"),
        "{text}"
    );

    let l = connect(&url).await.expect("the password argument");
    l.last_slot("db").await.expect("a call");
    let in_url = url.replacen("snap@", &format!("snap:{PASSWORD}@"), 1);
    PgLedger::connect(&in_url, None, PgOptions::default())
        .await
        .expect("the URL's password");
    let err = PgLedger::connect(&url, None, PgOptions::default())
        .await
        .expect_err("no password");
    assert!(err.to_string().contains("password"), "{err}");
    let wrong = in_url.replacen(PASSWORD, "hunter2-wrong", 1);
    let err = PgLedger::connect(&wrong, None, PgOptions::default())
        .await
        .expect_err("a wrong password");
    let text = no_password(&err);
    assert!(text.contains("password authentication failed"), "{text}");
}

/// Against a server without TLS, `prefer` (the default) connects in the
/// clear and `require` refuses.
#[tokio::test]
async fn without_tls_on_the_server_prefer_falls_back_and_require_refuses() {
    let Some(cluster) = pg_cluster::shared_or_skip(
        "without_tls_on_the_server_prefer_falls_back_and_require_refuses",
    ) else {
        return;
    };
    let db = cluster.create_database().expect("database");
    let l = connect(&cluster.url(&db)).await.expect("prefer");
    assert!(!encrypted(&l).await);
    let err = connect(&format!("{}?sslmode=require", cluster.url(&db)))
        .await
        .expect_err("require");
    let text = no_password(&err);
    assert!(text.contains("TLS") || text.contains("SSL"), "{text}");
}
