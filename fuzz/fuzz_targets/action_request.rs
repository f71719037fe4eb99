//! Bodies of `/init` and `/run` as the action server reads them, and the
//! job requests inside a `/run`: whatever the bytes, parsing returns
//! either an error or a request within the documented bounds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp_wire::action::{
    JobRequest, MAX_ATTEMPTS, MAX_BATCH_CALLS, check_job_id, parse_init, parse_job_request, parse_run,
};

fuzz_target!(|body: &[u8]| {
    if let Ok(init) = parse_init(body) {
        assert!(!init.main.is_empty());
        assert!(init.code.as_deref().is_none_or(|c| !c.trim().is_empty()));
        // Decoding may fail, but must say why.
        if let Err(e) = init.module_bytes() {
            assert!(!e.0.is_empty());
        }
    }
    let Ok(run) = parse_run(body) else {
        return;
    };
    assert!(run.context.iter().all(|(k, _)| k.starts_with("__OW_")));
    let Ok(request) = parse_job_request(run.value) else {
        return;
    };
    if let JobRequest::Batch(batch) = &request {
        assert!(check_job_id(&batch.job).is_ok());
        assert!((1..=MAX_BATCH_CALLS).contains(&batch.count));
        assert!(batch.first.checked_add(batch.count).is_some());
        assert!((1..=MAX_ATTEMPTS).contains(&batch.attempt));
        match (&batch.args, batch.args_range) {
            (Some(args), None) => assert_eq!(args.len(), batch.count as usize),
            (None, Some([start, end])) => assert!(start < end),
            other => panic!("accepted a batch with arguments {other:?}"),
        }
    }
    // What was accepted survives the trip back through JSON unchanged.
    let again = serde_json::to_value(&request).expect("a request serializes");
    assert_eq!(parse_job_request(again).expect("re-parses"), request);
});
