/* Chat templates: detection from real templates' Jinja text, rendering of a
 * six-message conversation (the one llama.cpp's test-chat-template.cpp uses)
 * compared with what each template renders, names, end markers, errors. */
#include "qai/tokenizer.h"
#include "test.h"

static const qai_chat_message CONV[] = {
    {"system", "You are a helpful assistant"}, {"user", "Hello"},
    {"assistant", "Hi there"},                 {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},  {"user", "Another question"},
};
#define N_CONV (sizeof CONV / sizeof CONV[0])

/* Templates as the models publish them (tokenizer_config.json chat_template). */
static const char *T_LLAMA2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
static const char *T_LLAMA3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
static const char *T_CHATML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char *T_QWEN2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou "
    "are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
    "}}{% endif %}";
static const char *T_ZEPHYR =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% "
    "elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% "
    "if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
static const char *T_PHI3 =
    "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + "
    "'<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif "
    "%}";
static const char *T_GEMMA =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif "
    "%}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif "
    "%}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
static const char *T_VICUNA =
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {{ message['content'] }}\n{% else "
    "%}ASSISTANT: {{ message['content'] }}</s>\n{% endif %}{% endfor %}";

static void detect(void) {
    CHECK_EQ_INT(qai_chat_detect(T_LLAMA2), QAI_CHAT_LLAMA2);
    CHECK_EQ_INT(qai_chat_detect(T_LLAMA3), QAI_CHAT_LLAMA3);
    CHECK_EQ_INT(qai_chat_detect(T_CHATML), QAI_CHAT_CHATML);
    CHECK_EQ_INT(qai_chat_detect(T_QWEN2), QAI_CHAT_CHATML);
    CHECK_EQ_INT(qai_chat_detect(T_ZEPHYR), QAI_CHAT_ZEPHYR);
    CHECK_EQ_INT(qai_chat_detect(T_PHI3), QAI_CHAT_PHI3);
    CHECK_EQ_INT(qai_chat_detect(T_GEMMA), QAI_CHAT_GEMMA);
    CHECK_EQ_INT(qai_chat_detect(T_VICUNA), QAI_CHAT_UNKNOWN);
    CHECK_EQ_INT(qai_chat_detect(NULL), QAI_CHAT_UNKNOWN);
    CHECK_EQ_INT(qai_chat_detect(""), QAI_CHAT_UNKNOWN);
    CHECK_EQ_INT(qai_chat_detect("chatml"), QAI_CHAT_CHATML); /* a name is accepted too */
}

static void expect(qai_chat_format f, bool add, const char *want) {
    char *out;
    CHECK_OK(qai_chat_apply(f, CONV, N_CONV, add, &out));
    if (!out) return;
    CHECK_MSG(!strcmp(out, want), "%s renders:\n%s\n--- want:\n%s\n---", qai_chat_format_name(f), out, want);
    qai_free(out);
}

static void render(void) {
    /* llama.cpp's expected outputs for the same conversation, where its jinja run agrees with the template */
    expect(QAI_CHAT_CHATML, true,
           "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>"
           "assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an "
           "assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n");
    expect(QAI_CHAT_LLAMA3, true,
           "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|"
           "end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi "
           "there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are "
           "you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an "
           "assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother "
           "question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    expect(QAI_CHAT_PHI3, true,
           "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi "
           "there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   "
           "<|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n");
    expect(QAI_CHAT_GEMMA, true,
           "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
           "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an "
           "assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
    /* Llama 2's template (BOS before each [INST]; the first is left to the tokenizer), worked by hand */
    expect(QAI_CHAT_LLAMA2, true,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you "
           "[/INST] I am an assistant </s><s>[INST] Another question [/INST]");
    /* Zephyr/TinyLlama with trim_blocks: each message then "\n", the generation prompt "<|assistant|>\n" */
    expect(QAI_CHAT_ZEPHYR, true,
           "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there</s>\n<|user|>\nWho "
           "are you</s>\n<|assistant|>\n   I am an assistant   </s>\n<|user|>\nAnother question</s>\n<|assistant|>\n");
    /* without the generation prompt */
    char *out;
    qai_chat_message one = {"user", "hi"};
    CHECK_OK(qai_chat_apply(QAI_CHAT_CHATML, &one, 1, false, &out));
    CHECK(out && !strcmp(out, "<|im_start|>user\nhi<|im_end|>\n"));
    qai_free(out);
    CHECK_OK(qai_chat_apply(QAI_CHAT_PHI3, &one, 1, false, &out));
    CHECK(out && !strcmp(out, "<|user|>\nhi<|end|>\n<|endoftext|>"));
    qai_free(out);
    CHECK_OK(qai_chat_apply(QAI_CHAT_LLAMA2, &one, 1, true, &out));
    CHECK(out && !strcmp(out, "[INST] hi [/INST]"));
    qai_free(out);
    CHECK_OK(qai_chat_apply(QAI_CHAT_LLAMA3, NULL, 0, true, &out));
    CHECK(out && !strcmp(out, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
    qai_free(out);
}

static void names_and_errors(void) {
    for (int f = QAI_CHAT_LLAMA2; f <= QAI_CHAT_GEMMA; f++) {
        const char *name = qai_chat_format_name((qai_chat_format)f);
        CHECK_EQ_INT(qai_chat_format_from_name(name), f);
        CHECK(strlen(qai_chat_end_marker((qai_chat_format)f)) > 0);
    }
    CHECK(!strcmp(qai_chat_end_marker(QAI_CHAT_CHATML), "<|im_end|>"));
    CHECK(!strcmp(qai_chat_end_marker(QAI_CHAT_LLAMA3), "<|eot_id|>"));
    CHECK(!strcmp(qai_chat_end_marker(QAI_CHAT_UNKNOWN), ""));
    CHECK_EQ_INT(qai_chat_format_from_name("nope"), QAI_CHAT_UNKNOWN);
    CHECK_EQ_INT(qai_chat_format_from_name(NULL), QAI_CHAT_UNKNOWN);
    char *out;
    CHECK(qai_chat_apply(QAI_CHAT_UNKNOWN, CONV, N_CONV, true, &out) == QAI_ERR_ARG);
    CHECK(out == NULL);
    qai_chat_message bad = {"user", NULL};
    CHECK(qai_chat_apply(QAI_CHAT_CHATML, &bad, 1, true, &out) == QAI_ERR_ARG);
    CHECK_MSG(strstr(qai_last_error(), "message 0") != NULL, "%s", qai_last_error());
    CHECK(qai_chat_apply(QAI_CHAT_CHATML, NULL, 2, true, &out) == QAI_ERR_ARG);
}

int main(void) {
    detect();
    render();
    names_and_errors();
    return test_summary();
}
