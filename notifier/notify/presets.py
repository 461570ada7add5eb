"""Built-in body templates for chat services' incoming webhooks.

Each is an ordinary template (see ``template.py``) so that a user who wants a variation copies
one into ``template = '''...'''`` and edits it. Golden files in tests/golden/ pin what each
renders; the shapes follow each service's incoming-webhook documentation.
"""

from __future__ import annotations

from typing import Final

_COLOR = (
    "{% set color = {'imageversion.failed': 13632027, 'imageversion.completed': 2664261,"
    " 'imageversion.squashed': 9807270, 'watch.poll_failing': 16098851}.get(type, 3447003) %}"
)

# Microsoft Teams: a Workflows "post to a channel when a webhook request is received" flow takes
# a message with an Adaptive Card attachment (the Office 365 connectors' MessageCard is retired);
# a Teams message is limited to about 28 KB, so a long error is cut.
TEAMS: Final = """{
  "type": "message",
  "attachments": [{
    "contentType": "application/vnd.microsoft.card.adaptive",
    "contentUrl": null,
    "content": {
      "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
      "type": "AdaptiveCard",
      "version": "1.4",
      "body": [
        {"type": "TextBlock", "text": {{ headline | markdown_text | json }}, "weight": "Bolder",
         "size": "Medium",
         "wrap": true},
        {"type": "FactSet", "facts": [
          {"title": "State", "value": {{ data.current.state | json }}},
          {"title": "Progress", "value": {{ (data.current.progress ~ "%") | json }}},
          {"title": "ETA", "value": {{ (data.current.eta or "unknown") | json }}},
          {"title": "Image version", "value": {{ (data.account_service_id ~ "/"
            ~ data.image_version_id) | json }}}
          {%- if error %},
          {"title": "Error", "value": {{ error | truncate(2000, true, "…", 0)
            | json }}}{% endif %}
        ]}
      ]
    }
  }]
}"""

# Discord: content at most 2,000 characters, embed title 256, field values 1,024; mentions in a
# label ("@everyone") are not pinged. The upstream error is shown as code, not as Markdown.
DISCORD: Final = (
    _COLOR
    + """{
  "content": {{ headline | markdown_text | truncate(2000, true, "…", 0) | json }},
  "allowed_mentions": {"parse": []},
  "embeds": [{
    "title": {{ (data.label or ("image version " ~ data.image_version_id))
      | truncate(256, true, "…", 0) | json }},
    "color": {{ color }},
    "timestamp": {{ timestamp | json }},
    "fields": [
      {"name": "State", "value": {{ data.current.state | json }}, "inline": true},
      {"name": "Progress", "value": {{ (data.current.progress ~ "%") | json }}, "inline": true},
      {"name": "ETA", "value": {{ (data.current.eta or "unknown") | json }}, "inline": true}
      {%- if error %},
      {"name": "Error", "value": {{ error | truncate(1000, true, "…", 0) | code_block | json }}}
      {%- endif %}
    ]
  }]
}"""
)

# Mattermost: an incoming webhook takes Markdown in "text". The upstream error goes in a code
# block, where Mattermost neither formats it nor notifies an "@channel" or "@all" in it.
MATTERMOST: Final = """{
  "text": {{ ("#### " ~ (headline | markdown_text) ~ "\\n"
    ~ "| State | Progress | ETA |\\n| --- | --- | --- |\\n"
    ~ "| " ~ (data.current.state | markdown_text) ~ " | " ~ data.current.progress ~ "% | "
    ~ (data.current.eta or "unknown") ~ " |"
    ~ (("\\n**Error:**\\n" ~ (error | truncate(15000, true, "…", 0) | code_block))
       if error else ""))
    | truncate(16000, true, "…", 0) | json }}
}"""

# Google Chat: a space's incoming webhook takes "text" with *bold* formatting. The upstream error
# goes in a code block, with "<" replaced: Chat reads "<users/all>" as a mention of everyone.
GOOGLE_CHAT: Final = """{
  "text": {{ ("*" ~ (headline | chat_text) ~ "*\\n"
    ~ "State: " ~ (data.current.state | chat_text)
    ~ ", progress " ~ data.current.progress ~ "%, ETA "
    ~ (data.current.eta or "unknown")
    ~ (("\\nError:\\n" ~ (error | replace("<", "\\u2039")
         | truncate(3500, true, "…", 0) | code_block)) if error else ""))
    | truncate(4000, true, "…", 0) | json }}
}"""

PRESETS: Final[dict[str, str]] = {
    "teams": TEAMS,
    "discord": DISCORD,
    "mattermost": MATTERMOST,
    "google_chat": GOOGLE_CHAT,
}
