//! `mint '<claims json>' '<private jwk json>'`: prints a token signed by keygate's core
//! (`SigningKey::from_jwk` + `token::encode`). Used by the end-to-end filter tests.

use keygate::token::{encode, Claims, Jwk, SigningKey};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [claims, jwk] = args.as_slice() else {
        eprintln!("usage: mint '<claims json>' '<private jwk json>'");
        return ExitCode::from(2);
    };
    let result = (|| -> Result<String, String> {
        let claims: Claims = serde_json::from_str(claims).map_err(|e| format!("claims: {e}"))?;
        let jwk: Jwk = jwk.parse().map_err(|e| format!("jwk: {e}"))?;
        let key = SigningKey::from_jwk(&jwk).map_err(|e| format!("jwk: {e}"))?;
        encode(&claims, &key).map_err(|e| format!("encode: {e}"))
    })();
    match result {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mint: {e}");
            ExitCode::FAILURE
        }
    }
}
