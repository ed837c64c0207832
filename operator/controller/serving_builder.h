// The serving children of a TrainingJob with spec.serving (docs/serving.md): a Deployment
// "<job>-serve" of tandem-serve following the job's published models, and a Service
// "<job>-serve" (ports http 8080, grpc 8081) in front of it. Both carry tandem.dev/job and a
// controller ownerReference (deleted with the job); the serving pods are labelled
// tandem.dev/serving=<job> (not tandem.dev/job: the job's NetworkPolicy, which closes the ring and
// pserver ports to everyone else, does not select them). The pods run non-root with a read-only
// root filesystem, mount the job's checkpoint volume read-only, and are ready once a model is
// loaded (/readyz). Serving needs a volume every node can read: the job's claim (ReadWriteMany)
// or an ExistingClaim; with storage HostPath it sees only its own node's folder.
#pragma once

#include <string>

#include "api/training_job.h"
#include "nlohmann/json.hpp"
#include "operator/controller/worker_builder.h"

namespace tandem::controller {

inline constexpr char kServingLabel[] = "tandem.dev/serving";
inline constexpr char kServeContainer[] = "serve";
inline constexpr int kServingHttpPort = 8080;
inline constexpr int kServingGrpcPort = 8081;

std::string ServingName(const std::string& job);  // "<job>-serve"
// The publish directory as the serving pods (and the job's processes) see it.
std::string ServingModelDir(const api::TrainingJob& job);

// REQUIRES: job.spec.serving and job.spec.publish (validated by api/).
nlohmann::json BuildServingDeployment(const nlohmann::json& job_object, const api::TrainingJob& job,
                                      const BuildOptions& options);
nlohmann::json BuildServingService(const nlohmann::json& job_object, const api::TrainingJob& job);

}  // namespace tandem::controller
