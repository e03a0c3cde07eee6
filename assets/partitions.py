"""One partition per crawl shard, added by the crawl sensor (or `foundry run`) as files arrive."""

from dagster import DynamicPartitionsDefinition

crawl_shards = DynamicPartitionsDefinition(name="crawl_shards")
