// tandem-serve's gRPC predict service (proto/serving.proto): the same validation (field paths
// as in the JSON API), batching and answers as POST /v1/predict.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/serving.pb.h"
#include "serve/request.h"

namespace tandem::serve {

class ModelServer;

class GrpcEndpoint {
 public:
  virtual ~GrpcEndpoint() = default;
  virtual void Shutdown() = 0;
};

// Listens on host:port (0: a free port, written to *bound_port). Plaintext: put TLS in front (a
// mesh or an ingress) where needed, as for the HTTP port.
absl::StatusOr<std::unique_ptr<GrpcEndpoint>> StartGrpc(ModelServer* server, const std::string& host,
                                                        int port, int* bound_port);

// A request's instances as examples of `sig`; INVALID_ARGUMENT naming the field at fault.
absl::StatusOr<std::vector<Example>> ConvertPredictRequest(const serving::PredictRequest& req,
                                                           const Signature& sig,
                                                           const RequestLimits& limits);

}  // namespace tandem::serve
