-- The privacy ledger (aggregator/private-query.ts): one row per question an analyst asks through the
-- query command, written BEFORE the answer is returned. `epsilon` is what the question charged to the
-- analyst's daily budget (release_policy.daily_epsilon), `analyst` is the ClickHouse user that asked
-- (currentUser(), not a name the client chooses), `answer` the noisy rows, so the same question asked
-- again the same day gets the same answer instead of fresh noise that could be averaged away. Exact
-- answers (mode 'exact') and refusals are logged here too. It holds no personal data: request
-- parameters and noisy aggregates only.
CREATE TABLE IF NOT EXISTS {db}.privacy_ledger
(
    day Date,
    at DateTime,
    analyst String,
    request String,
    mode String,
    epsilon Float64,
    answer String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (analyst, day, request, at);
