"""StreamPulse: Faust stream analytics over Avro topics with a Confluent Schema Registry."""
