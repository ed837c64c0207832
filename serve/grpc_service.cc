#include "serve/grpc_service.h"

#include <chrono>
#include <limits>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "proto/serving.grpc.pb.h"
#include "serve/server.h"

namespace tandem::serve {
namespace {

using trainer::InputSource;

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status CheckIds(const google::protobuf::RepeatedField<int64_t>& ids, const std::string& path,
                      int64_t vocab, std::vector<int32_t>* out) {
  const int64_t hi = vocab > 0 ? vocab - 1 : std::numeric_limits<int32_t>::max();
  for (int k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || ids[k] > hi)
      return Bad(absl::StrCat(path, "[", k, "]"),
                 absl::StrCat(vocab > 0 ? "token id" : "feature id", " must be an integer in [0, ",
                              hi, "], got ", ids[k]));
    out->push_back(static_cast<int32_t>(ids[k]));
  }
  return absl::OkStatus();
}

class Service final : public serving::Predictor::Service {
 public:
  explicit Service(ModelServer* server) : server_(server) {}

  grpc::Status Predict(grpc::ServerContext*, const serving::PredictRequest* req,
                       serving::PredictResponse* resp) override {
    const auto start = std::chrono::steady_clock::now();
    auto finish = [&](int code, grpc::Status st, size_t n) {
      server_->Record("grpc", code,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), n);
      return st;
    };
    std::shared_ptr<const ServedModel> model = server_->current();
    if (!model) return finish(503, grpc::Status(grpc::StatusCode::UNAVAILABLE, "no model loaded yet"), 0);
    auto examples = ConvertPredictRequest(*req, model->signature(), server_->options().limits);
    if (!examples.ok())
      return finish(400, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      std::string(examples.status().message())), 0);
    const size_t n = examples->size();
    BatchResult r = server_->Predict(std::move(model), *std::move(examples));
    if (!r.status.ok()) {
      const bool busy = absl::IsResourceExhausted(r.status);
      return finish(busy ? 429 : 503,
                    grpc::Status(busy ? grpc::StatusCode::RESOURCE_EXHAUSTED : grpc::StatusCode::UNAVAILABLE,
                                 std::string(r.status.message())),
                    0);
    }
    resp->set_model_version(r.model->version());
    resp->set_model_step(r.model->step());
    const int64_t per = r.model->signature().output_size;
    for (size_t i = 0; i < n; ++i) {
      serving::Prediction* p = resp->add_predictions();
      p->mutable_values()->Add(r.outputs.begin() + i * per, r.outputs.begin() + (i + 1) * per);
    }
    return finish(200, grpc::Status::OK, n);
  }

 private:
  ModelServer* const server_;
};

class Endpoint final : public GrpcEndpoint {
 public:
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
  void Shutdown() override {
    if (server) server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  ~Endpoint() override { Shutdown(); }
};

}  // namespace

absl::StatusOr<std::vector<Example>> ConvertPredictRequest(const serving::PredictRequest& req,
                                                           const Signature& sig,
                                                           const RequestLimits& limits) {
  if (req.instances_size() == 0) return Bad("instances", "must hold at least one example");
  if (static_cast<size_t>(req.instances_size()) > limits.max_examples)
    return Bad("instances", absl::StrCat("at most ", limits.max_examples, " examples per request, got ",
                                         req.instances_size()));
  std::vector<Example> out(req.instances_size());
  for (int i = 0; i < req.instances_size(); ++i) {
    const std::string base = absl::StrCat("instances[", i, "]");
    const serving::Instance& inst = req.instances(i);
    out[i].inputs.resize(sig.inputs.size());
    std::vector<bool> seen(sig.inputs.size(), false);
    for (const serving::InputValue& v : inst.inputs()) {
      const std::string path = absl::StrCat(base, ".", v.name());
      const InputSpec* in = sig.Find(v.name());
      if (in == nullptr) return Bad(path, "unknown input");
      const size_t k = static_cast<size_t>(in - sig.inputs.data());
      if (seen[k]) return Bad(path, "given twice");
      seen[k] = true;
      InputValue& dst = out[i].inputs[k];
      switch (in->source) {
        case InputSource::kFeatures:
          if (v.values_size() != in->size)
            return Bad(path, absl::StrCat("expected ", in->size, " numbers, got ", v.values_size()));
          for (float f : v.values())
            if (!std::isfinite(f)) return Bad(path, "numbers must be finite");
          dst.values.assign(v.values().begin(), v.values().end());
          break;
        case InputSource::kFields: {
          if (v.field_lengths_size() != in->size)
            return Bad(path, absl::StrCat("expected ", in->size, " field_lengths, got ", v.field_lengths_size()));
          uint64_t total = 0;
          dst.offsets.assign(1, 0);
          for (uint32_t len : v.field_lengths()) {
            if (len > limits.max_ids_per_field)
              return Bad(path, absl::StrCat("at most ", limits.max_ids_per_field, " ids per field, got ", len));
            total += len;
            dst.offsets.push_back(static_cast<int32_t>(total));
          }
          if (total != static_cast<uint64_t>(v.ids_size()))
            return Bad(path, absl::StrCat("field_lengths add up to ", total, " but ", v.ids_size(), " ids were given"));
          absl::Status st = CheckIds(v.ids(), path + ".ids", 0, &dst.ids);
          if (!st.ok()) return st;
          break;
        }
        case InputSource::kTokens: {
          if (v.ids_size() == 0 || v.ids_size() > in->size)
            return Bad(path, absl::StrCat("expected 1 to ", in->size, " token ids, got ", v.ids_size()));
          absl::Status st = CheckIds(v.ids(), path + ".ids", in->vocab, &dst.ids);
          if (!st.ok()) return st;
          break;
        }
        default:
          return Bad(path, "not a serving input");
      }
    }
    for (size_t k = 0; k < sig.inputs.size(); ++k)
      if (!seen[k]) return Bad(absl::StrCat(base, ".", sig.inputs[k].name), "required");
  }
  return out;
}

absl::StatusOr<std::unique_ptr<GrpcEndpoint>> StartGrpc(ModelServer* server, const std::string& host,
                                                        int port, int* bound_port) {
  auto e = std::make_unique<Endpoint>();
  e->service = std::make_unique<Service>(server);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(host, ":", port), grpc::InsecureServerCredentials(), bound_port);
  const int limit = static_cast<int>(std::min<size_t>(server->options().max_body_bytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(limit);
  builder.RegisterService(e->service.get());
  e->server = builder.BuildAndStart();
  if (!e->server || *bound_port == 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, " (gRPC)"));
  return std::unique_ptr<GrpcEndpoint>(std::move(e));
}

}  // namespace tandem::serve
