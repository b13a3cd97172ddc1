//! The `LeaseStore` port on a DynamoDB table (aws-sdk-dynamodb): one item per cluster lease
//! (`pk` = `lease#<cluster>`) and per copy heartbeat (`pk` = `copy#<id>`), with `owner`,
//! `expires` (Unix milliseconds), `counter` (the fencing token) and `ttl` (Unix seconds, a day
//! after `expires`, so DynamoDB's TTL removes what nobody renews). Every write is a conditional
//! write; a failed condition is `ErrorKind::AlreadyExists`. Also the table's creation
//! (`elasticrds lease-table create`): on-demand billing, TTL on `ttl`.

use super::aws::classify;
use crate::core::lease::LeaseRecord;
use crate::ports::{ErrorKind, LeaseStore, PortError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

const LEASE: &str = "lease#";
const COPY: &str = "copy#";

pub struct DynamoLeases {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoLeases {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoLeases {
            client,
            table: table.to_string(),
        }
    }

    /// Create the table (on-demand, TTL on `ttl`).
    pub async fn create_table(&self) -> Result<(), PortError> {
        let op = "CreateTable";
        let key = |n: &str| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(KeyType::Hash)
                .build()
        };
        let attr = AttributeDefinition::builder()
            .attribute_name("pk")
            .attribute_type(ScalarAttributeType::S)
            .build();
        let fail = |e: aws_sdk_dynamodb::error::BuildError| {
            PortError::new(ErrorKind::Fatal, op, e.to_string())
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .key_schema(key("pk").map_err(fail)?)
            .attribute_definitions(attr.map_err(fail)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("ttl")
            .build()
            .map_err(fail)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| classify("UpdateTimeToLive", &e))?;
        Ok(())
    }

    fn item(pk: String, owner: &str, expires: DateTime<Utc>, counter: u64) -> Item {
        let n = |v: i64| AttributeValue::N(v.to_string());
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(pk)),
            ("owner".to_string(), AttributeValue::S(owner.to_string())),
            ("expires".to_string(), n(expires.timestamp_millis())),
            ("counter".to_string(), n(counter as i64)),
            ("ttl".to_string(), n(expires.timestamp() + 86_400)),
        ])
    }

    /// Put `item` if the stored one is still `seen` (or absent when `None`).
    async fn put_if(
        &self,
        item: Item,
        seen: Option<&LeaseRecord>,
        op: &str,
    ) -> Result<(), PortError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        put = match seen {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(s) => put
                .condition_expression("#o = :o AND #c = :c AND #e = :e")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_names("#c", "counter")
                .expression_attribute_names("#e", "expires")
                .expression_attribute_values(":o", AttributeValue::S(s.owner.clone()))
                .expression_attribute_values(":c", AttributeValue::N(s.counter.to_string()))
                .expression_attribute_values(
                    ":e",
                    AttributeValue::N(s.expires.timestamp_millis().to_string()),
                ),
        };
        put.send()
            .await
            .map_err(|e| conditional(op, classify(op, &e)))?;
        Ok(())
    }
}

/// A failed condition: another copy wrote first.
fn conditional(op: &str, e: PortError) -> PortError {
    if e.message.contains("ConditionalCheckFailed") {
        PortError::new(ErrorKind::AlreadyExists, op, "changed by another copy")
    } else {
        e
    }
}

fn record(item: &Item) -> Option<(String, LeaseRecord)> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let n = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let pk = s("pk")?;
    let rec = LeaseRecord {
        key: String::new(),
        owner: s("owner").unwrap_or_default(),
        expires: DateTime::from_timestamp_millis(n("expires")?)?,
        counter: n("counter").unwrap_or(0).max(0) as u64,
    };
    Some((pk, rec))
}

#[async_trait]
impl LeaseStore for DynamoLeases {
    async fn read_all(&self) -> Result<(Vec<LeaseRecord>, Vec<LeaseRecord>), PortError> {
        let op = "Scan";
        let (mut leases, mut copies) = (Vec::new(), Vec::new());
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op, &e))?;
            for (pk, mut rec) in page.items().iter().filter_map(record) {
                if let Some(c) = pk.strip_prefix(LEASE) {
                    rec.key = c.to_string();
                    leases.push(rec);
                } else if let Some(c) = pk.strip_prefix(COPY) {
                    rec.key = c.to_string();
                    copies.push(rec);
                }
            }
        }
        Ok((leases, copies))
    }

    async fn acquire(
        &self,
        cluster: &str,
        seen: Option<&LeaseRecord>,
        owner: &str,
        expires: DateTime<Utc>,
    ) -> Result<LeaseRecord, PortError> {
        let counter = seen.map_or(0, |s| s.counter) + 1;
        let item = Self::item(format!("{LEASE}{cluster}"), owner, expires, counter);
        self.put_if(item, seen, "PutItem (acquire)").await?;
        Ok(LeaseRecord {
            key: cluster.to_string(),
            owner: owner.to_string(),
            expires,
            counter,
        })
    }

    async fn renew(
        &self,
        held: &LeaseRecord,
        expires: DateTime<Utc>,
    ) -> Result<LeaseRecord, PortError> {
        let item = Self::item(
            format!("{LEASE}{}", held.key),
            &held.owner,
            expires,
            held.counter,
        );
        self.put_if(item, Some(held), "PutItem (renew)").await?;
        Ok(LeaseRecord {
            expires,
            ..held.clone()
        })
    }

    async fn release(&self, held: &LeaseRecord) -> Result<(), PortError> {
        let gone = DateTime::<Utc>::UNIX_EPOCH;
        let item = Self::item(format!("{LEASE}{}", held.key), "", gone, held.counter);
        self.put_if(item, Some(held), "PutItem (release)").await
    }

    async fn heartbeat(&self, copy: &str, expires: DateTime<Utc>) -> Result<(), PortError> {
        let item = Self::item(format!("{COPY}{copy}"), copy, expires, 0);
        let op = "PutItem (heartbeat)";
        (self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item)))
        .send()
        .await
        .map_err(|e| classify(op, &e))?;
        Ok(())
    }
}
