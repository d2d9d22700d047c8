//! What the retry loop's result means for the client, decided here so the proxy only
//! renders it: the answer passed on as success; an upstream error answer passed through
//! (with `x-should-retry: false` once flexgate retried it, or on billing); or flexgate's
//! own error: `FlexUnavailable` when flex had no capacity and the plan may not escalate,
//! `DeadlineExceeded` when the deadline was spent without an answer, otherwise the last
//! attempt's failure (timeout, connection, unreadable answer).

use std::time::Duration;

use super::attempt::{Answer, AttemptError, UpstreamResponse};
use super::classify::Verdict;
use super::retry::{Finished, GiveUp};
use crate::error::GatewayError;
use crate::metrics::{AttemptResult, Outcome};

/// The client's answer, by who speaks.
pub enum Settled {
    /// The upstream's answer, passed on as success (buffered or streamed).
    Success(UpstreamResponse),
    /// An upstream error answer passed through as it is.
    PassThrough {
        answer: UpstreamResponse,
        outcome: Outcome,
        /// Tell the client not to retry what flexgate already retried (or a billing error).
        no_retry: bool,
    },
    /// flexgate answers with its own error.
    Own(GatewayError),
}

impl Finished<Answer> {
    /// Decide the client's answer; `deadline` is the plan's, quoted in errors.
    pub fn settle(self, deadline: Duration) -> Settled {
        settle(self.output, self.verdict, self.gave_up, deadline)
    }
}

fn settle(output: Answer, verdict: Verdict, gave_up: Option<GiveUp>, deadline: Duration) -> Settled {
    let deadline = || humantime::format_duration(deadline).to_string();
    match (output, verdict, gave_up) {
        (Answer::Response(answer), Verdict::Success, _) => Settled::Success(answer),
        (_, _, Some(GiveUp::FlexUnavailable)) => Settled::Own(GatewayError::FlexUnavailable { deadline: deadline() }),
        (Answer::Response(answer), verdict, gave_up) => {
            let outcome = match (verdict.result(), gave_up) {
                (_, Some(GiveUp::Deadline)) => Outcome::DeadlineExceeded,
                (AttemptResult::ClientError | AttemptResult::Billing, _) => Outcome::ClientError,
                _ => Outcome::UpstreamError,
            };
            let no_retry = verdict.is_billing() || gave_up.is_some();
            Settled::PassThrough { answer, outcome, no_retry }
        }
        (Answer::Failed(_), _, Some(GiveUp::Deadline)) => {
            Settled::Own(GatewayError::DeadlineExceeded { deadline: deadline() })
        }
        (Answer::Failed(error), _, _) => Settled::Own(match error {
            AttemptError::Timeout => GatewayError::UpstreamTimeout(deadline()),
            AttemptError::Connect(why) => GatewayError::UpstreamUnreachable(why),
            AttemptError::NotAdmitted(_) => GatewayError::DeadlineExceeded { deadline: deadline() },
            AttemptError::CutBody
            | AttemptError::MalformedJson
            | AttemptError::EmptyStream
            | AttemptError::StreamOpenedWithError => GatewayError::UpstreamProtocol(error.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::upstream::attempt::AnswerBody;
    use crate::upstream::classify::Reason;

    fn answer(status: u16) -> Answer {
        Answer::Response(UpstreamResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: AnswerBody::Full(Bytes::new()),
            report: None,
        })
    }

    fn retry(reason: Reason) -> Verdict {
        Verdict::Retry { reason, hint: None }
    }

    const D: Duration = Duration::from_secs(20);

    #[test]
    fn a_success_is_passed_on() {
        assert!(matches!(settle(answer(200), Verdict::Success, None, D), Settled::Success(_)));
    }

    #[test]
    fn upstream_answers_pass_through_with_their_outcome() {
        let billing = Verdict::Final { result: AttemptResult::Billing };
        let client = Verdict::Final { result: AttemptResult::ClientError };
        let cases = [
            (answer(429), billing, None, Outcome::ClientError, true),
            (answer(400), client, None, Outcome::ClientError, false),
            (answer(429), retry(Reason::RateLimit), Some(GiveUp::Attempts), Outcome::UpstreamError, true),
            (answer(500), retry(Reason::ServerError), Some(GiveUp::Deadline), Outcome::DeadlineExceeded, true),
        ];
        for (output, verdict, gave_up, want_outcome, want_no_retry) in cases {
            let Settled::PassThrough { outcome, no_retry, .. } = settle(output, verdict, gave_up, D) else {
                panic!("{verdict:?} {gave_up:?} is not passed through");
            };
            assert_eq!((outcome, no_retry), (want_outcome, want_no_retry), "{verdict:?} {gave_up:?}");
        }
    }

    #[test]
    fn flex_unavailable_is_flexgates_own_429_whatever_the_last_attempt_saw() {
        for output in [answer(429), Answer::Failed(AttemptError::Timeout)] {
            let settled = settle(output, retry(Reason::FlexCapacity), Some(GiveUp::FlexUnavailable), D);
            assert!(matches!(settled, Settled::Own(GatewayError::FlexUnavailable { .. })));
        }
    }

    #[test]
    fn every_attempt_error_becomes_one_gateway_error() {
        let cases = [
            (AttemptError::Connect("connection failed (refused)".into()), 502, "upstream_unreachable"),
            (AttemptError::Timeout, 504, "upstream_timeout"),
            (AttemptError::CutBody, 502, "upstream_protocol_error"),
            (AttemptError::MalformedJson, 502, "upstream_protocol_error"),
            (AttemptError::EmptyStream, 502, "upstream_protocol_error"),
            (AttemptError::StreamOpenedWithError, 502, "upstream_protocol_error"),
        ];
        for (error, status, code) in cases {
            let text = error.to_string();
            let Settled::Own(own) = settle(Answer::Failed(error), retry(Reason::ServerError), None, D) else {
                panic!("{text}: not flexgate's own error");
            };
            assert_eq!((own.status().as_u16(), own.body()["error"]["code"].as_str()), (status, Some(code)), "{text}");
            assert!(own.to_string().contains(&text) || code == "upstream_timeout", "{own}");
        }
        let spent = settle(Answer::Failed(AttemptError::Timeout), retry(Reason::Timeout), Some(GiveUp::Deadline), D);
        assert!(matches!(spent, Settled::Own(GatewayError::DeadlineExceeded { .. })));
    }
}
