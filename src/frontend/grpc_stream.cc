// ModelInfer and ModelStreamInfer over InferenceServer::infer_async.
#include "frontend/grpc_stream.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "frontend/grpc_codec.h"

namespace hearth::frontend {

using namespace serving;  // the core these front ends serve

namespace {

using namespace std::chrono_literals;
using Stream = grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>;

constexpr auto kPollPeriod = 5ms;

Status cancelled_status(grpc::ServerContext* context) {
  if (context->deadline() <= std::chrono::system_clock::now())
    return Status(StatusCode::kDeadlineExceeded, "the call's deadline passed before inference finished");
  return Status(StatusCode::kCancelled, "the client cancelled the request");
}

// The call's hearth-routing-key metadata ("" when absent), for a release's sticky routing.
Result<std::string> metadata_routing_key(const grpc::ServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("hearth-routing-key");
  if (it == metadata.end()) return std::string();
  if (it->second.size() > kMaxRoutingKeyBytes)
    return invalid_argument("the hearth-routing-key metadata is longer than ", kMaxRoutingKeyBytes, " bytes");
  return std::string(it->second.data(), it->second.size());
}

// One request of a stream, answered in arrival order.
struct StreamEntry {
  std::string model_name, model_version, id;  // echoed in an error answer
  // The request set enable_empty_final_response: its answer carries Triton's
  // triton_final_response parameter. Hearth's models answer each request once
  // (none is decoupled), so that one answer is the final one.
  bool mark_final = false;
  std::optional<Result<InferResponse>> result;
};

// State shared by a stream's reader thread, its writer (the handler thread)
// and the inference callbacks, which may outlive the call.
struct StreamState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<StreamEntry>> entries;  // arrival order
  bool reading_done = false;
  bool stop = false;  // the writer gave up: the reader stops too
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);

  void finish(const std::shared_ptr<StreamEntry>& entry, Result<InferResponse> result) {
    std::lock_guard<std::mutex> lock(mu);
    entry->result.emplace(std::move(result));
    cv.notify_all();
  }
};

// Reads requests until the client half-closes (or the call dies) and queues
// each one; never throws.
void read_stream(InferenceServer& server, Stream* stream, const std::shared_ptr<StreamState>& state,
                 const StreamAdmit& admit, const std::string& routing_key) {
  try {
    inference::ModelInferRequest request;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(state->mu);
        state->cv.wait(lock, [&] { return state->stop || state->entries.size() < kMaxStreamInFlight; });
        if (state->stop) break;
      }
      if (!stream->Read(&request)) break;
      auto entry = std::make_shared<StreamEntry>();
      entry->model_name = request.model_name();
      entry->model_version = request.model_version();
      entry->id = request.id();
      if (auto p = request.parameters().find("enable_empty_final_response"); p != request.parameters().end())
        entry->mark_final = p->second.parameter_choice_case() == inference::InferParameter::kBoolParam &&
                            p->second.bool_param();
      {
        std::lock_guard<std::mutex> lock(state->mu);
        state->entries.push_back(entry);
      }
      if (admit) {
        Status admitted = admit(request);
        if (!admitted.ok()) {
          state->finish(entry, admitted);
          continue;
        }
      }
      Result<InferRequest> decoded = decode_infer_request(request);
      if (!decoded.ok()) {
        state->finish(entry, decoded.status());
        continue;
      }
      decoded->cancelled = state->cancelled;
      if (decoded->routing_key.empty()) decoded->routing_key = routing_key;
      server.infer_async(std::move(*decoded),
                         [state, entry](Result<InferResponse> r) { state->finish(entry, std::move(r)); });
    }
  } catch (const std::exception&) {
    // Ends reading; the answers already queued are still written.
  }
  std::lock_guard<std::mutex> lock(state->mu);
  state->reading_done = true;
  state->cv.notify_all();
}

inference::ModelStreamInferResponse stream_answer(const StreamEntry& entry) {
  inference::ModelStreamInferResponse answer;
  const Result<InferResponse>& r = *entry.result;
  inference::ModelInferResponse* response = answer.mutable_infer_response();
  if (r.ok()) {
    encode_infer_response(*r, response);
  } else {
    answer.set_error_message(r.status().message());
    response->set_model_name(entry.model_name);
    response->set_model_version(entry.model_version);
    response->set_id(entry.id);
  }
  if (entry.mark_final) (*response->mutable_parameters())["triton_final_response"].set_bool_param(true);
  return answer;
}

// Writes answers in arrival order as they complete; returns false when the
// call was cancelled or a write failed.
bool write_answers(grpc::ServerContext* context, Stream* stream, StreamState& state) {
  std::unique_lock<std::mutex> lock(state.mu);
  for (;;) {
    auto front_ready = [&] { return !state.entries.empty() && state.entries.front()->result.has_value(); };
    state.cv.wait_for(lock, kPollPeriod, [&] { return front_ready() || (state.reading_done && state.entries.empty()); });
    while (front_ready()) {
      std::shared_ptr<StreamEntry> entry = state.entries.front();
      state.entries.pop_front();
      state.cv.notify_all();  // room for the reader
      lock.unlock();
      bool written = stream->Write(stream_answer(*entry));
      lock.lock();
      if (!written) return false;
    }
    if (state.reading_done && state.entries.empty()) return true;
    if (context->IsCancelled()) return false;
  }
}

}  // namespace

Status infer_unary(InferenceServer& server, grpc::ServerContext* context, const inference::ModelInferRequest& in,
                   inference::ModelInferResponse* out) {
  HEARTH_ASSIGN_OR_RETURN(InferRequest request, decode_infer_request(in));
  if (request.routing_key.empty()) {
    HEARTH_ASSIGN_OR_RETURN(request.routing_key, metadata_routing_key(context));
  }
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<InferResponse>> result;
  };
  auto slot = std::make_shared<Slot>();
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  request.cancelled = cancelled;
  server.infer_async(std::move(request), [slot](Result<InferResponse> r) {
    std::lock_guard<std::mutex> lock(slot->mu);
    slot->result.emplace(std::move(r));
    slot->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(slot->mu);
  while (!slot->cv.wait_for(lock, kPollPeriod, [&] { return slot->result.has_value(); })) {
    if (context->IsCancelled()) {
      cancelled->store(true);
      return cancelled_status(context);
    }
  }
  HEARTH_RETURN_IF_ERROR(slot->result->status());
  encode_infer_response(slot->result->value(), out);
  return ok_status();
}

Status serve_infer_stream(InferenceServer& server, grpc::ServerContext* context, Stream* stream, StreamAdmit admit) {
  HEARTH_ASSIGN_OR_RETURN(std::string routing_key, metadata_routing_key(context));
  auto state = std::make_shared<StreamState>();
  std::thread reader([&server, stream, state, &admit, &routing_key] {
    read_stream(server, stream, state, admit, routing_key);
  });
  bool completed = false;
  try {
    completed = write_answers(context, stream, *state);
  } catch (...) {
    completed = false;
  }
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->stop = true;
    state->cv.notify_all();
  }
  if (!completed) state->cancelled->store(true);  // drop this stream's queued work
  // Read() returns false once the call is over, so the reader ends.
  reader.join();
  return completed ? ok_status() : cancelled_status(context);
}

}  // namespace hearth::frontend
