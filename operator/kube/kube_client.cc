// cpprestsdk's U() macro clashes with GoogleTest and others; keep it off before any cpprest header.
#define _TURN_OFF_PLATFORM_STRING
#include "operator/kube/kube_client.h"

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status.h"
#include "operator/kube/api_error.h"

namespace tandem::kube {
namespace {

namespace http = web::http;
using http::client::http_client;
using http::client::http_client_config;

metrics::Family<metrics::Counter>& RequestsFamily() {
  static auto& f = metrics::Registry::Default().AddCounter(
      "tandem_operator_api_requests_total", "Kubernetes API requests made, by verb and HTTP code",
      {"verb", "code"});
  return f;
}
metrics::Family<metrics::Counter>& ErrorsFamily() {
  static auto& f = metrics::Registry::Default().AddCounter(
      "tandem_operator_api_errors_total",
      "Kubernetes API requests that failed, by HTTP code (0: no response)", {"code"});
  return f;
}

void Count(const std::string& verb, int code) {
  RequestsFamily().WithLabels({verb, std::to_string(code)})->Inc();
  if (code == 0 || code >= 400) ErrorsFamily().WithLabels({std::to_string(code)})->Inc();
}

std::string ContentTypeOf(PatchType t) {
  switch (t) {
    case PatchType::kMerge:
      return "application/merge-patch+json";
    case PatchType::kJson:
      return "application/json-patch+json";
    case PatchType::kStrategicMerge:
      return "application/strategic-merge-patch+json";
  }
  return "application/merge-patch+json";
}

absl::StatusOr<nlohmann::json> ParseJson(const std::string& body, const std::string& what) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    return absl::InternalError(absl::StrCat(what, ": response is not JSON: ", body.substr(0, 200)));
  }
  return j;
}

}  // namespace

std::string QueryEscape(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string ListQuery(const ListOptions& o, bool watch) {
  std::string q;
  auto add = [&q](const std::string& k, const std::string& v) {
    absl::StrAppend(&q, q.empty() ? "?" : "&", k, "=", QueryEscape(v));
  };
  if (!o.label_selector.empty()) add("labelSelector", o.label_selector);
  if (!o.field_selector.empty()) add("fieldSelector", o.field_selector);
  if (!o.resource_version.empty()) add("resourceVersion", o.resource_version);
  if (watch) {
    add("watch", "1");
    if (o.allow_watch_bookmarks) add("allowWatchBookmarks", "true");
    if (o.timeout_seconds > 0) add("timeoutSeconds", std::to_string(o.timeout_seconds));
  }
  return q;
}

class KubeClient::Impl {
 public:
  Impl(const KubeConfig& cfg, const KubeClientOptions& options)
      : cfg_(cfg), options_(options), client_(cfg.server, MakeConfig(options.request_timeout_s)) {}

  http_client_config MakeConfig(int timeout_s) const {
    http_client_config c;
    c.set_timeout(std::chrono::seconds(timeout_s));
    c.set_validate_certificates(!cfg_.insecure_skip_tls_verify);
    std::string ca = cfg_.ca_pem, cert = cfg_.client_cert_pem, key = cfg_.client_key_pem;
    if (!ca.empty() || !cert.empty()) {
      c.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& ctx) {
        boost::system::error_code ec;
        if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca), ec);
        if (ec) TANDEM_LOG(error, "kube client: CA bundle rejected: {}", ec.message());
        if (!cert.empty()) {
          ctx.use_certificate_chain(boost::asio::buffer(cert), ec);
          if (ec) TANDEM_LOG(error, "kube client: client certificate rejected: {}", ec.message());
          ctx.use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem, ec);
          if (ec) TANDEM_LOG(error, "kube client: client key rejected: {}", ec.message());
        }
      });
    }
    return c;
  }

  std::string Token() {
    absl::MutexLock lock(&mu_);
    auto now = std::chrono::steady_clock::now();
    if (!cfg_.token_file.empty() && now - token_read_ > std::chrono::seconds(60)) {
      std::ifstream in(cfg_.token_file);
      if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        std::string t(absl::StripAsciiWhitespace(ss.str()));
        if (!t.empty()) cfg_.token = t;
      }
      token_read_ = now;
    }
    return cfg_.token;
  }

  http::http_request MakeRequest(const std::string& method, const std::string& path_and_query,
                                 const std::string& body, const std::string& content_type) {
    http::http_request req(method);
    req.set_request_uri(path_and_query);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", options_.user_agent);
    std::string token = Token();
    if (!token.empty()) {
      req.headers().add("Authorization", "Bearer " + token);
    } else if (!cfg_.username.empty()) {
      req.headers().add("Authorization",
                        "Basic " + absl::Base64Escape(cfg_.username + ":" + cfg_.password));
    }
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      req.set_body(body, content_type);
    }
    return req;
  }

  // Returns {code, body}; code 0 with the error on transport failure.
  absl::StatusOr<std::string> Do(const std::string& verb, const std::string& method,
                                 const std::string& path_and_query, const std::string& body,
                                 const std::string& content_type) {
    std::string what = absl::StrCat(method, " ", path_and_query);
    try {
      http::http_response resp =
          client_.request(MakeRequest(method, path_and_query, body, content_type)).get();
      int code = resp.status_code();
      std::string text = resp.extract_utf8string(true).get();
      Count(verb, code);
      if (code >= 200 && code < 300) return text;
      return ApiErrorFromResponse(code, text, what);
    } catch (const std::exception& e) {
      Count(verb, 0);
      return MakeApiError(0, "ServiceUnavailable", absl::StrCat(what, ": ", e.what()));
    }
  }

  KubeConfig cfg_;
  const KubeClientOptions options_;
  http_client client_;
  absl::Mutex mu_;
  std::chrono::steady_clock::time_point token_read_ ABSL_GUARDED_BY(mu_) =
      std::chrono::steady_clock::now();
};

namespace {

class CppRestWatchStream : public WatchStream {
 public:
  CppRestWatchStream(std::unique_ptr<http_client> client, pplx::cancellation_token_source cts,
                     http::http_response resp, std::string what)
      : client_(std::move(client)), cts_(std::move(cts)), resp_(std::move(resp)),
        body_(resp_.body()), what_(std::move(what)) {}

  ~CppRestWatchStream() override { Cancel(); }

  absl::StatusOr<std::optional<WatchEvent>> Next() override {
    while (true) {
      if (cancelled_.load()) return std::optional<WatchEvent>();
      concurrency::streams::container_buffer<std::string> line;
      size_t n = 0;
      try {
        n = body_.read_line(line).get();
      } catch (const std::exception& e) {
        if (cancelled_.load()) return std::optional<WatchEvent>();
        return MakeApiError(0, "ServiceUnavailable", absl::StrCat(what_, ": stream broke: ", e.what()));
      }
      const std::string& text = line.collection();
      if (n == 0 && text.empty()) {
        if (body_.is_eof() || cancelled_.load()) return std::optional<WatchEvent>();
        continue;  // an empty line
      }
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string()) {
        return absl::InternalError(absl::StrCat(what_, ": bad watch event: ", text.substr(0, 200)));
      }
      std::string type = j["type"];
      if (type == "ERROR") return ApiErrorFromStatusObject(j.value("object", nlohmann::json()), what_);
      return std::optional<WatchEvent>(WatchEvent{type, std::move(j["object"])});
    }
  }

  void Cancel() override {
    if (!cancelled_.exchange(true)) cts_.cancel();
  }

 private:
  std::unique_ptr<http_client> client_;
  pplx::cancellation_token_source cts_;
  http::http_response resp_;
  concurrency::streams::istream body_;
  std::string what_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace

KubeClient::KubeClient(KubeConfig config, KubeClientOptions options)
    : config_(std::move(config)), impl_(std::make_unique<Impl>(config_, options)) {}

KubeClient::~KubeClient() = default;

absl::StatusOr<std::string> KubeClient::Request(const std::string& method,
                                                const std::string& path_and_query,
                                                const std::string& body,
                                                const std::string& content_type) {
  return impl_->Do(absl::AsciiStrToLower(method), method, path_and_query, body, content_type);
}

absl::StatusOr<nlohmann::json> KubeClient::Get(const Resource& r, const std::string& ns,
                                               const std::string& name) {
  std::string path = r.ObjectPath(ns, name);
  TANDEM_ASSIGN_OR_RETURN(std::string body, impl_->Do("get", "GET", path, "", ""));
  return ParseJson(body, path);
}

absl::StatusOr<nlohmann::json> KubeClient::List(const Resource& r, const std::string& ns,
                                                const ListOptions& options) {
  std::string path = r.CollectionPath(ns) + ListQuery(options, false);
  TANDEM_ASSIGN_OR_RETURN(std::string body, impl_->Do("list", "GET", path, "", ""));
  return ParseJson(body, path);
}

absl::StatusOr<nlohmann::json> KubeClient::Create(const Resource& r, const std::string& ns,
                                                  const nlohmann::json& object) {
  nlohmann::json o = object;
  o["apiVersion"] = r.ApiVersion();
  o["kind"] = r.kind;
  if (r.namespaced && !ns.empty()) o["metadata"]["namespace"] = ns;
  std::string path = r.CollectionPath(ns);
  TANDEM_ASSIGN_OR_RETURN(std::string body,
                          impl_->Do("create", "POST", path, o.dump(), "application/json"));
  return ParseJson(body, path);
}

absl::StatusOr<nlohmann::json> KubeClient::Update(const Resource& r, const nlohmann::json& object) {
  std::string path = r.ObjectPath(NamespaceOf(object), NameOf(object));
  TANDEM_ASSIGN_OR_RETURN(std::string body,
                          impl_->Do("update", "PUT", path, object.dump(), "application/json"));
  return ParseJson(body, path);
}

absl::StatusOr<nlohmann::json> KubeClient::UpdateStatus(const Resource& r,
                                                        const nlohmann::json& object) {
  std::string path = r.ObjectPath(NamespaceOf(object), NameOf(object), "status");
  TANDEM_ASSIGN_OR_RETURN(std::string body,
                          impl_->Do("update_status", "PUT", path, object.dump(), "application/json"));
  return ParseJson(body, path);
}

absl::StatusOr<nlohmann::json> KubeClient::Patch(const Resource& r, const std::string& ns,
                                                 const std::string& name, PatchType type,
                                                 const nlohmann::json& patch,
                                                 const std::string& subresource) {
  std::string path = r.ObjectPath(ns, name, subresource);
  TANDEM_ASSIGN_OR_RETURN(std::string body,
                          impl_->Do("patch", "PATCH", path, patch.dump(), ContentTypeOf(type)));
  return ParseJson(body, path);
}

absl::Status KubeClient::Delete(const Resource& r, const std::string& ns, const std::string& name,
                                const DeleteOptions& options) {
  nlohmann::json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (options.grace_period_seconds) body["gracePeriodSeconds"] = *options.grace_period_seconds;
  if (!options.propagation_policy.empty()) body["propagationPolicy"] = options.propagation_policy;
  if (!options.precondition_uid.empty()) body["preconditions"] = {{"uid", options.precondition_uid}};
  return impl_->Do("delete", "DELETE", r.ObjectPath(ns, name), body.dump(), "application/json").status();
}

absl::StatusOr<std::unique_ptr<WatchStream>> KubeClient::Watch(const Resource& r,
                                                               const std::string& ns,
                                                               const ListOptions& options) {
  std::string path = r.CollectionPath(ns) + ListQuery(options, true);
  std::string what = absl::StrCat("GET ", path);
  // A dedicated connection per watch: its idle timeout differs and cancelling it must not
  // disturb pooled connections.
  auto client = std::make_unique<http_client>(
      config_.server, impl_->MakeConfig(impl_->options_.watch_idle_timeout_s));
  pplx::cancellation_token_source cts;
  try {
    http::http_response resp =
        client->request(impl_->MakeRequest("GET", path, "", ""), cts.get_token()).get();
    int code = resp.status_code();
    Count("watch", code);
    if (code != 200) {
      std::string text = resp.extract_utf8string(true).get();
      return ApiErrorFromResponse(code, text, what);
    }
    return std::unique_ptr<WatchStream>(
        new CppRestWatchStream(std::move(client), std::move(cts), std::move(resp), what));
  } catch (const std::exception& e) {
    Count("watch", 0);
    return MakeApiError(0, "ServiceUnavailable", absl::StrCat(what, ": ", e.what()));
  }
}

}  // namespace tandem::kube
