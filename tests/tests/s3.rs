//! The S3 server the tests use (scripts/s3-server) is real: SigV4 is checked, objects round-trip,
//! and conditional creates (`PutMode::Create`, If-None-Match) refuse to overwrite — the
//! primitive backup locks rely on.

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use obs_e2e::S3Server;

fn client(s3: &S3Server, secret: &str) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_access_key_id(s3.var("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(secret)
        .with_region(s3.var("AWS_REGION"))
        .with_bucket_name(s3.bucket())
        .with_allow_http(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn s3_server_round_trips_and_honours_create_only_puts() {
    let s3 = S3Server::start();
    let store = client(&s3, s3.var("AWS_SECRET_ACCESS_KEY"));
    let prefix = format!("harness-{}", std::process::id());
    let key = Path::from(format!("{prefix}/locks/a"));

    store.put(&key, "first".into()).await.unwrap();
    let got = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"first");

    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let err = store
        .put_opts(&key, "second".into(), create.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, object_store::Error::AlreadyExists { .. }), "{err}");
    let other = Path::from(format!("{prefix}/locks/b"));
    store.put_opts(&other, "new".into(), create).await.unwrap();

    store.delete(&key).await.unwrap();
    assert!(matches!(
        store.get(&key).await.unwrap_err(),
        object_store::Error::NotFound { .. }
    ));

    let wrong = client(&s3, "not-the-secret");
    assert!(wrong.get(&other).await.is_err(), "a wrong secret must be refused");
}
