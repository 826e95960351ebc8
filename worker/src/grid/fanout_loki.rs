//! The Loki query API of a grid's tenant-API persona: the same request asked of every
//! storage worker (with the caller's `X-Scope-OrgID` and credentials), the answers merged
//! the way Loki's own query frontend merges its queriers':
//! - log queries (`resultType: streams`): every worker's lines together, ordered by time in
//!   the query's direction and cut to its `limit`, regrouped by stream;
//! - metric queries (`matrix`, `vector`): split where they start to add up across workers, as
//!   Loki's query frontend shards them: the workers answer the part that adds up (a range
//!   function, or `sum` of one), summed here per series and timestamp; the aggregations above
//!   it (`avg`, `min`, `max`, `count`, `topk`, whose per-worker answers are not the answer)
//!   run here over the merged series;
//! - labels, label values and series: the union.
//!
//! Live tail is relayed from every storage worker's tail ([`fanout_tail`](super::fanout_tail)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meniscus_store::logql::ast::{AggregateOp, MetricExpr, Query};
use meniscus_store::query::loki::{apply, Series};
use serde_json::{json, Value};

use super::fanout::{sort, with_incomplete, Fanout, Sorted};
use crate::http::error::ApiError;
use crate::tenant_api::loki::{self, format_value, LokiRequest, Params};

/// A Loki request asked of every storage worker: the merged answer's inputs, or the answer to
/// give instead (the caller's error, a worker's refusal, 503 when none answered).
struct Asked {
    sorted: Sorted,
    params: Params,
    /// Aggregations of a split metric query, outside in, to apply to the merged answer.
    wrappers: Vec<MetricExpr>,
}

async fn ask(fanout: &Fanout, request: Request) -> Result<Asked, Response> {
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    // The caller is checked first, as by the Loki API itself: nothing of a stranger's request
    // is read; then its parameters, from the query string and a POSTed form.
    let LokiRequest { tenant, mut params } = LokiRequest::from_request(request, fanout.state())
        .await
        .map_err(|error| error.plain_text())?;
    // "Now" is fixed here, once: each worker reading its own clock would answer for a
    // slightly different instant (and range steps), and the answers would not line up.
    let pinned = match path.rsplit('/').next() {
        Some("query") => Some("time"),
        Some("query_range") => Some("end"),
        _ => None,
    };
    if let Some(name) = pinned.filter(|name| params.get(name).is_none()) {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        params.0.push((name.to_string(), now.to_string()));
    }
    // A metric query that does not add up across workers is asked in the part that does.
    let mut wrappers = Vec::new();
    if pinned.is_some() {
        if let Some(Ok(Query::Metric(expr))) = params.get("query").map(meniscus_store::logql::parse)
        {
            if !adds_up(&expr) {
                let (inner, above) = split(expr);
                wrappers = above;
                for (name, value) in &mut params.0 {
                    if name == "query" {
                        *value = inner.to_string();
                    }
                }
            }
        }
    }
    let query = serde_urlencoded::to_string(&params.0).map_err(|error| {
        ApiError::bad_request(format!("the parameters cannot be passed on: {error}")).plain_text()
    })?;
    let answers = fanout
        .ask_all(
            tenant.id.as_str(),
            Method::GET,
            &format!("{path}?{query}"),
            &headers,
            Bytes::new(),
            super::fanout::ASK_TIMEOUT,
        )
        .await
        .map_err(|error| error.plain_text())?;
    let sorted = sort(answers).settle().map_err(|response| *response)?;
    Ok(Asked {
        sorted,
        params,
        wrappers,
    })
}

/// `expr` split at the outermost part that adds up across workers: that part, and the
/// aggregations above it, outside in.
fn split(expr: MetricExpr) -> (MetricExpr, Vec<MetricExpr>) {
    let mut above = Vec::new();
    let mut at = expr;
    while !adds_up(&at) {
        let inner = match &at {
            MetricExpr::Aggregate { inner, .. } | MetricExpr::TopK { inner, .. } => {
                (**inner).clone()
            }
            // A range function always adds up; not reached.
            MetricExpr::Range { .. } => break,
        };
        above.push(at);
        at = inner;
    }
    (at, above)
}

/// Applies `wrappers` (outside in) to a merged metric answer, innermost first.
fn apply_wrappers(mut answer: Value, wrappers: &[MetricExpr], result_type: &str) -> Value {
    // Times as written by the workers, keyed by their value in microseconds.
    let mut times: BTreeMap<i64, Value> = BTreeMap::new();
    let mut series: Vec<Series> = Vec::new();
    for one in answer["data"]["result"].as_array().into_iter().flatten() {
        let labels: BTreeMap<String, String> = one["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_string()))
            .collect();
        let points: Vec<&Value> = if result_type == "vector" {
            vec![&one["value"]]
        } else {
            one["values"].as_array().into_iter().flatten().collect()
        };
        let points = points
            .into_iter()
            .map(|point| {
                let at = (point[0].as_f64().unwrap_or(0.0) * 1e6).round() as i64;
                times.entry(at).or_insert_with(|| point[0].clone());
                let value = point[1]
                    .as_str()
                    .and_then(|text| text.parse::<f64>().ok())
                    .unwrap_or(0.0);
                (at, value)
            })
            .collect();
        series.push(Series { labels, points });
    }
    for wrapper in wrappers.iter().rev() {
        series = apply(wrapper, series);
    }
    let result: Vec<Value> = series
        .into_iter()
        .map(|one| {
            let points: Vec<Value> = one
                .points
                .into_iter()
                .map(|(at, value)| json!([times.get(&at).cloned().unwrap_or(Value::Null), format_value(value)]))
                .collect();
            if result_type == "vector" {
                json!({"metric": one.labels, "value": points.first().cloned().unwrap_or(Value::Null)})
            } else {
                json!({"metric": one.labels, "values": points})
            }
        })
        .collect();
    answer["data"]["result"] = Value::Array(result);
    answer
}

/// `GET|POST /loki/api/v1/query_range` and `/query`.
pub async fn query(State(fanout): State<Arc<Fanout>>, request: Request) -> Response {
    let Asked {
        sorted,
        params,
        wrappers,
    } = match ask(&fanout, request).await {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let Sorted { ok, incomplete, .. } = sorted;
    let answers: Vec<Value> = ok.into_iter().map(|(_, answer)| answer).collect();
    let result_type = answers[0]["data"]["resultType"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let merged = match result_type.as_str() {
        "streams" => Ok(merge_streams(&answers, &params)),
        "matrix" | "vector" => {
            merge_metric(answers, &params, &result_type).map(|merged| match wrappers.is_empty() {
                true => merged,
                false => apply_wrappers(merged, &wrappers, &result_type),
            })
        }
        other => Err(format!("a storage worker answered resultType {other:?}")),
    };
    match merged {
        Ok(answer) => with_incomplete(answer, incomplete),
        Err(reason) => (StatusCode::NOT_IMPLEMENTED, reason).into_response(),
    }
}

/// Every worker's lines, newest (or, `direction=forward`, oldest) first, cut to `limit` and
/// regrouped by stream.
fn merge_streams(answers: &[Value], params: &Params) -> Value {
    // The storage workers took both (or the caller has their 400 by now).
    let limit = loki::limit(params).unwrap_or(loki::DEFAULT_LIMIT);
    let forward = loki::forward(params).unwrap_or(false);
    // (time in ns, stream labels as JSON text, the entry)
    let mut entries: Vec<(i128, String, Value)> = Vec::new();
    for answer in answers {
        for stream in answer["data"]["result"].as_array().into_iter().flatten() {
            let labels = stream["stream"].to_string();
            for entry in stream["values"].as_array().into_iter().flatten() {
                let at = entry[0]
                    .as_str()
                    .and_then(|ns| ns.parse::<i128>().ok())
                    .unwrap_or(0);
                entries.push((at, labels.clone(), entry.clone()));
            }
        }
    }
    if forward {
        entries.sort_by_key(|entry| entry.0);
    } else {
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    }
    entries.truncate(limit);
    let returned = entries.len();
    let mut streams: Vec<(String, Vec<Value>)> = Vec::new();
    for (_, labels, entry) in entries {
        match streams.iter_mut().find(|(known, _)| *known == labels) {
            Some((_, values)) => values.push(entry),
            None => streams.push((labels, vec![entry])),
        }
    }
    let result: Vec<Value> = streams
        .into_iter()
        .map(|(labels, values)| {
            json!({
                "stream": serde_json::from_str::<Value>(&labels).unwrap_or(Value::Null),
                "values": values,
            })
        })
        .collect();
    let mut stats = answers[0]["data"]["stats"].clone();
    stats["summary"]["totalEntriesReturned"] = json!(returned);
    json!({
        "status": "success",
        "data": {"resultType": "streams", "result": result, "stats": stats},
    })
}

/// One worker's answer when only one found anything; the sum per series and time when the
/// query adds up across workers; otherwise why not.
fn merge_metric(answers: Vec<Value>, params: &Params, result_type: &str) -> Result<Value, String> {
    let mut holding: Vec<Value> = answers
        .into_iter()
        .filter(|answer| {
            answer["data"]["result"]
                .as_array()
                .is_some_and(|result| !result.is_empty())
        })
        .collect();
    if holding.len() <= 1 {
        return Ok(holding.pop().unwrap_or_else(
            || json!({"status": "success", "data": {"resultType": result_type, "result": []}}),
        ));
    }
    let additive = params
        .get("query")
        .and_then(|text| meniscus_store::logql::parse(text).ok())
        .is_some_and(|query| matches!(query, Query::Metric(expr) if adds_up(&expr)));
    if !additive {
        return Err(format!(
            "this metric query cannot be answered across {} storage workers holding the tenant's \
             events: only the range functions (count_over_time, rate, bytes_over_time, \
             bytes_rate) and sum of them add up; avg, min, max, count and topk do not",
            holding.len()
        ));
    }
    // metric labels (JSON text) → time (its JSON text, as written) → (time, sum)
    let mut sums: BTreeMap<String, BTreeMap<String, (Value, f64)>> = BTreeMap::new();
    let mut add = |metric: &Value, point: &Value| {
        let value = point[1]
            .as_str()
            .and_then(|text| text.parse::<f64>().ok())
            .unwrap_or(0.0);
        let slot = sums
            .entry(metric.to_string())
            .or_default()
            .entry(point[0].to_string())
            .or_insert((point[0].clone(), 0.0));
        slot.1 += value;
    };
    for answer in &holding {
        for series in answer["data"]["result"].as_array().into_iter().flatten() {
            if result_type == "vector" {
                add(&series["metric"], &series["value"]);
            } else {
                for point in series["values"].as_array().into_iter().flatten() {
                    add(&series["metric"], point);
                }
            }
        }
    }
    let result: Vec<Value> = sums
        .into_iter()
        .map(|(metric, points)| {
            let metric = serde_json::from_str::<Value>(&metric).unwrap_or(Value::Null);
            let mut points: Vec<(Value, f64)> = points.into_values().collect();
            points.sort_by(|a, b| {
                let at = |point: &Value| point.as_f64().unwrap_or(0.0);
                at(&a.0).total_cmp(&at(&b.0))
            });
            let points: Vec<Value> = points
                .into_iter()
                .map(|(at, sum)| json!([at, format_value(sum)]))
                .collect();
            if result_type == "vector" {
                json!({"metric": metric, "value": points[0]})
            } else {
                json!({"metric": metric, "values": points})
            }
        })
        .collect();
    let mut merged = holding.swap_remove(0);
    merged["data"]["result"] = Value::Array(result);
    Ok(merged)
}

/// Whether per-worker answers of `expr` add up to the answer over all workers: each event is
/// counted on one worker only, so counts, bytes and their rates do, and so does their sum.
fn adds_up(expr: &MetricExpr) -> bool {
    match expr {
        MetricExpr::Range { .. } => true,
        MetricExpr::Aggregate {
            op: AggregateOp::Sum,
            inner,
            ..
        } => adds_up(inner),
        _ => false,
    }
}

/// `GET|POST /loki/api/v1/labels` and `/label/{name}/values`: the union of the workers'.
pub async fn labels(State(fanout): State<Arc<Fanout>>, request: Request) -> Response {
    let Asked { sorted, .. } = match ask(&fanout, request).await {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let names: BTreeSet<String> = sorted
        .ok
        .iter()
        .flat_map(|(_, answer)| answer["data"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(str::to_string))
        .collect();
    with_incomplete(
        json!({"status": "success", "data": names}),
        sorted.incomplete,
    )
}

/// `GET|POST /loki/api/v1/series`: the union of the workers' label sets.
pub async fn series(State(fanout): State<Arc<Fanout>>, request: Request) -> Response {
    let Asked { sorted, .. } = match ask(&fanout, request).await {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    let sets: BTreeSet<String> = sorted
        .ok
        .iter()
        .flat_map(|(_, answer)| answer["data"].as_array().cloned().unwrap_or_default())
        .map(|set| set.to_string())
        .collect();
    let data: Vec<Value> = sets
        .iter()
        .filter_map(|set| serde_json::from_str(set).ok())
        .collect();
    with_incomplete(
        json!({"status": "success", "data": data}),
        sorted.incomplete,
    )
}

/// Anything else under `/loki/` (push goes to a correlator).
pub async fn not_here() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {
            "code": "not_found",
            "message": "the tenant-API persona of a grid serves Loki's query_range, query, \
                        labels, label values, series and tail; push goes to a correlator",
        }})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        )
    }

    #[test]
    fn lines_from_two_workers_interleave_by_time_and_are_cut_to_the_limit() {
        let worker = |lines: &[(&str, &str)]| {
            json!({"status": "success", "data": {"resultType": "streams", "stats": {"summary": {}},
                "result": [{"stream": {"app": "web"}, "values": lines.iter().map(|(at, line)| json!([at, line])).collect::<Vec<_>>()}]}})
        };
        let a = worker(&[("30", "a3"), ("10", "a1")]);
        let b = worker(&[("20", "b2"), ("5", "b0")]);
        let merged = merge_streams(&[a.clone(), b.clone()], &params(&[("limit", "3")]));
        let values = &merged["data"]["result"][0]["values"];
        assert_eq!(values, &json!([["30", "a3"], ["20", "b2"], ["10", "a1"]]));
        assert_eq!(
            merged["data"]["stats"]["summary"]["totalEntriesReturned"],
            3
        );
        let forward = merge_streams(&[a, b], &params(&[("direction", "FORWARD")]));
        assert_eq!(
            forward["data"]["result"][0]["values"][0],
            json!(["5", "b0"])
        );
    }

    #[test]
    fn metric_answers_add_up_only_for_queries_that_do() {
        let worker = |value: &str| {
            json!({"status": "success", "data": {"resultType": "vector",
                "result": [{"metric": {"app": "web"}, "value": [1700000000, value]}]}})
        };
        let sum = params(&[("query", r#"sum(count_over_time({app="web"}[5m]))"#)]);
        let merged = merge_metric(vec![worker("3"), worker("4")], &sum, "vector").unwrap();
        assert_eq!(
            merged["data"]["result"],
            json!([{"metric": {"app": "web"}, "value": [1700000000, "7"]}])
        );
        let avg = params(&[("query", r#"avg(count_over_time({app="web"}[5m]))"#)]);
        assert!(merge_metric(vec![worker("3"), worker("4")], &avg, "vector").is_err());
        // One worker holding matching events: its answer, whatever the query.
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        let alone = merge_metric(vec![worker("3"), empty], &avg, "vector").unwrap();
        assert_eq!(alone["data"]["result"][0]["value"][1], "3");
    }
}
