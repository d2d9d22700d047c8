//! What a request may cost, estimated from the request itself before it is sent: the
//! amount its budget reservation holds, and what a stream that ends without its usage
//! is charged.
//!
//! Nothing here parses JSON: the body's size, and the model and output caps the proxy's
//! routing scan already read, are all it takes. Input tokens are the body's bytes / 3,
//! rounded up. OpenAI's tokenizers average about four bytes of English per token and
//! about three of code, and a CJK character is three bytes in UTF-8 and at most a token;
//! the JSON around the text (keys, roles, quotes) adds bytes that are no tokens. So for
//! text this is above the real count, without the fourfold excess of one token per byte.
//! It is below for text that tokenizes worse than three bytes a token (base64, hex or
//! random identifiers sent as text); images and files sent inline are counted as text,
//! well above what they are billed.

use rust_decimal::Decimal;

use crate::endpoint::Endpoint;
use crate::pricing::{Day, PriceTable};
use crate::tier::Tier;

/// Bytes counted as one token, for the request body and for streamed content.
pub const BYTES_PER_TOKEN: u64 = 3;

/// The output a request is assumed to ask for when it sets no cap: a long answer, or a
/// reasoning model's thinking plus a short one. A client that wants its reservations
/// tight sets `max_completion_tokens` / `max_output_tokens`.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 4096;

/// A request's estimate, made once when it is admitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Nano-dollars the request may cost; `None` when the price table cannot say (the
    /// model is unknown or not sold on the tier, or the body was not read), and the
    /// budget's `reserve_usd` is held instead.
    pub cost: Option<u64>,
    /// Input tokens estimated from the body: what an answer without usage is charged for
    /// its input.
    pub input_tokens: u64,
}

/// Tokens `bytes` bytes of text are counted as.
pub fn tokens_in(bytes: u64) -> u64 {
    bytes.div_ceil(BYTES_PER_TOKEN)
}

/// The most output a request of `endpoint` can be billed for: its cap (or the default)
/// for each choice it asks for; none for embeddings.
pub fn output_bound(endpoint: Endpoint, max_output: Option<u64>, choices: u64) -> u64 {
    match endpoint {
        Endpoint::Embeddings => 0,
        _ => max_output.unwrap_or(DEFAULT_OUTPUT_TOKENS).saturating_mul(choices.max(1)),
    }
}

/// Nano-dollars `input` and `output` tokens of `model` cost on `tier` on `day`, rounded
/// up; `None` when the price table has no price for them. Input is priced at the dearest
/// input rate of the entry (a cache write can cost more than plain input; a cache read
/// never does), and the long-context row is picked by `input` as for real usage.
pub fn cost(pricing: &PriceTable, model: &str, tier: Tier, day: Day, input: u64, output: u64) -> Option<u64> {
    let rates = pricing.rates_on(model, tier, day, input)?;
    let input_rate = rates.input.max(rates.cached_input).max(rates.cache_write);
    let usd =
        Decimal::from(input).checked_mul(input_rate)?.checked_add(Decimal::from(output).checked_mul(rates.output)?)?;
    super::nanos(usd)
}

/// The estimate of a request of `body_len` bytes for `model` on `tier`, whose output is
/// bounded by [`output_bound`].
pub fn request(
    pricing: &PriceTable,
    model: Option<&str>,
    tier: Tier,
    endpoint: Endpoint,
    body_len: usize,
    max_output: Option<u64>,
    choices: u64,
) -> Estimate {
    let input_tokens = tokens_in(u64::try_from(body_len).unwrap_or(u64::MAX));
    let output = output_bound(endpoint, max_output, choices);
    let cost = model.and_then(|m| cost(pricing, m, tier, Day::today(), input_tokens, output));
    Estimate { cost, input_tokens }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_estimated_at_its_tiers_price_from_its_size_and_cap() {
        let pricing = PriceTable::embedded();
        // gpt-5: $1.25 / $10 per million on standard, half on flex. 300 bytes are 100
        // input tokens; 50 output tokens are the cap.
        let standard = request(&pricing, Some("gpt-5"), Tier::Standard, Endpoint::ChatCompletions, 300, Some(50), 1);
        assert_eq!(standard, Estimate { cost: Some(125_000 + 500_000), input_tokens: 100 });
        let flex = request(&pricing, Some("gpt-5"), Tier::Flex, Endpoint::ChatCompletions, 300, Some(50), 1);
        assert_eq!(flex.cost, Some(312_500));
        // No cap: 4,096 output tokens, for each of two choices; a byte short of 100
        // tokens still counts as 100.
        let uncapped = request(&pricing, Some("gpt-5"), Tier::Standard, Endpoint::Responses, 299, None, 2);
        assert_eq!(uncapped.cost, Some(125_000 + 2 * 40_960_000));
        // Embeddings have no output.
        let embed = request(&pricing, Some("gpt-5"), Tier::Standard, Endpoint::Embeddings, 300, Some(50), 1);
        assert_eq!(embed.cost, Some(125_000));
    }

    #[test]
    fn unknown_models_and_unsold_tiers_leave_the_fallback_to_the_budget() {
        let pricing = PriceTable::embedded();
        let unknown = request(&pricing, Some("no-such-model"), Tier::Standard, Endpoint::ChatCompletions, 30, None, 1);
        assert_eq!(unknown, Estimate { cost: None, input_tokens: 10 });
        assert_eq!(request(&pricing, None, Tier::Standard, Endpoint::ChatCompletions, 30, None, 1).cost, None);
    }

    #[test]
    fn input_is_priced_at_the_dearest_input_rate_and_long_context_applies() {
        let text = r#"
            prices_as_of = "2026-01-01"
            [models.m]
            standard = { input = "1", cached_input = "0.1", cache_write = "1.25", output = "4" }
            long_context = { above_input_tokens = 1000, input = "2", output = "1.5" }
        "#;
        let pricing = PriceTable::from_toml(text).unwrap();
        let today = Day::today();
        // 1,000 tokens at $1.25 per million (the cache-write rate) and 10 at $4.
        assert_eq!(cost(&pricing, "m", Tier::Standard, today, 1000, 10), Some(1_250_000 + 40_000));
        // One more input token: the long-context row, input x2 and output x1.5.
        assert_eq!(cost(&pricing, "m", Tier::Standard, today, 1001, 10), Some(2_502_500 + 60_000));
        assert_eq!(cost(&pricing, "m", Tier::Flex, today, 1, 1), None, "not sold on flex");
    }
}
