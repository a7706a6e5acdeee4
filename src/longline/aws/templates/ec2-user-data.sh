#!/bin/bash
# longline option 4: install longline, its config and its systemd unit on first boot.
# A CloudFormation Fn::Sub template: the four dollar-brace names below (the pip package, and the
# config, secrets and unit as base64) are filled in by the stack; nothing else is substituted.
set -euo pipefail
dnf install -y python3.11 python3.11-pip
id longline >/dev/null 2>&1 || useradd --system --home-dir /var/lib/longline --shell /sbin/nologin longline
python3.11 -m venv /opt/longline
/opt/longline/bin/pip install --upgrade pip
/opt/longline/bin/pip install '${Package}'
install -d -m 0750 -o root -g longline /etc/longline
config='${Config}'
if [ -n "$config" ]; then
  echo "$config" | base64 -d > /etc/longline/longline.yaml
  chown root:longline /etc/longline/longline.yaml
  chmod 0640 /etc/longline/longline.yaml
fi
env='${Env}'
if [ -n "$env" ]; then
  echo "$env" | base64 -d > /etc/longline/env
  chown root:longline /etc/longline/env
  chmod 0640 /etc/longline/env
fi
echo '${Unit}' | base64 -d > /etc/systemd/system/longline.service
systemctl daemon-reload
systemctl enable --now longline.service
