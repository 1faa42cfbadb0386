# colony_openai: the OpenAI-compatible HTTP layer (openai_server.h) over an
# InferenceBackend (inference_backend.h) and the dashboard's files embedded
# into the library. It knows nothing of what runs the model.
# Meant to be include()d from src/api/CMakeLists.txt. Needs the targets
# colony_runtime, colony_cluster, colony_util, colony_vendor and cpp-httplib.
#
# TLS: HTTPS works when cpp-httplib was built with OpenSSL (its interface
# defines CPPHTTPLIB_OPENSSL_SUPPORT; cmake/llama.cmake: LLAMA_OPENSSL ON);
# otherwise --ssl-cert is refused with a clear error.
set(_openai_dir ${CMAKE_CURRENT_LIST_DIR})
set(_openai_gen ${CMAKE_CURRENT_BINARY_DIR}/openai_generated)
file(GLOB _openai_web CONFIGURE_DEPENDS ${_openai_dir}/web/*)

add_custom_command(
  OUTPUT ${_openai_gen}/web_assets.cpp
  COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${_openai_dir}/web -DOUT=${_openai_gen}/web_assets.cpp
          -P ${_openai_dir}/embed_web.cmake
  DEPENDS ${_openai_web} ${_openai_dir}/embed_web.cmake
  COMMENT "Embedding the dashboard (src/api/openai/web)"
  VERBATIM)

add_library(colony_openai STATIC
  ${_openai_dir}/inference_backend.cpp
  ${_openai_dir}/api_error.cpp
  ${_openai_dir}/request_fields.cpp
  ${_openai_dir}/request_parse.cpp
  ${_openai_dir}/request_agent.cpp
  ${_openai_dir}/chat_format.cpp
  ${_openai_dir}/generation_job.cpp
  ${_openai_dir}/job_stream.cpp
  ${_openai_dir}/ollama_api.cpp
  ${_openai_dir}/responses_api.cpp
  ${_openai_dir}/anthropic_api.cpp
  ${_openai_dir}/embeddings_api.cpp
  ${_openai_dir}/connection_pool.cpp
  ${_openai_dir}/response_json.cpp
  ${_openai_dir}/stop_matcher.cpp
  ${_openai_dir}/metrics.cpp
  ${_openai_dir}/generation_stream.cpp
  ${_openai_dir}/generation_handler.cpp
  ${_openai_dir}/openai_server.cpp
  ${_openai_gen}/web_assets.cpp)
target_link_libraries(colony_openai
  PUBLIC colony_runtime colony_util
  PRIVATE colony_cluster colony_vendor cpp-httplib llama-common Threads::Threads)

get_target_property(_openai_httplib_defs cpp-httplib INTERFACE_COMPILE_DEFINITIONS)
if(_openai_httplib_defs MATCHES "CPPHTTPLIB_OPENSSL_SUPPORT")
  message(STATUS "colony_openai: HTTPS available (cpp-httplib with OpenSSL)")
else()
  message(STATUS "colony_openai: cpp-httplib built without OpenSSL: --ssl-cert/--ssl-key are refused")
endif()
