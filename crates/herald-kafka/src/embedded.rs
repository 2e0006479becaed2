//! An embedded broker for `herald dev`: librdkafka's mock cluster, listening on 127.0.0.1,
//! with Herald's topics created up front (it has no CreateTopics API). It keeps a few MiB
//! per partition, compacts nothing, stores no transactional offsets and shows aborted records
//! to `read_committed` readers: fine to see Herald work, never for durability or exactly-once.

use std::sync::mpsc;

use rdkafka::mocking::MockCluster;

use crate::{KafkaError, TopicSpec};

/// Starts a one-broker mock cluster on a thread of its own (it is not `Send`), creates
/// `topics` in it and returns its bootstrap servers. It runs until the process exits.
pub fn start(topics: &[TopicSpec]) -> Result<String, KafkaError> {
    let topics = topics.to_vec();
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("embedded kafka".to_owned())
        .spawn(move || {
            let cluster = match MockCluster::new(1) {
                Ok(cluster) => cluster,
                Err(error) => {
                    let _ = sender.send(Err(KafkaError::Client(error)));
                    return;
                }
            };
            for topic in &topics {
                if let Err(error) = cluster.create_topic(&topic.name, topic.partitions, 1) {
                    let _ = sender.send(Err(KafkaError::Client(error)));
                    return;
                }
            }
            let _ = sender.send(Ok(cluster.bootstrap_servers()));
            // The cluster lives as long as this thread; the thread as long as the process.
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| KafkaError::Invalid(format!("starting the embedded broker: {e}")))?;
    receiver
        .recv()
        .map_err(|_| KafkaError::Invalid("the embedded broker did not start".to_owned()))?
}
