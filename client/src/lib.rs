//! AMQP client.
