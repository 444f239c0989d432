#!/bin/sh
# Prepares one member's database server before mysqld starts, with nothing but the server's own
# programs (no image entrypoint, no client): writes the member's own settings (server_id from the
# pod ordinal, report_host) and, on an empty data dir, initializes it with the chart's accounts.
# Statements run with the binary log off, so a new member holds no transactions of its own and
# can never be errant. The data dir is built aside and renamed into place: a crash half-way
# leaves no half-initialized server behind, only a scratch dir the next attempt removes.
#
# Environment: FLAVOR (mysql|mariadb), POD_NAME (<name>-<ordinal>), SERVER_ID_OFFSET,
# REPORT_HOST, DATADIR, DEFAULTS_FILE (the chart's my.cnf), POD_CNF (written here), SECRETS (dir
# of the auth Secret), ADMIN_USER, APP_DATABASE, APP_USER; MYSQLD and INSTALL_DB may name the
# programs.
set -eu

ordinal=${POD_NAME##*-}
case $ordinal in
''|*[!0-9]*) echo "init: cannot read an ordinal from pod name $POD_NAME" >&2; exit 1 ;;
esac
cat > "$POD_CNF.tmp" <<CNF
[mysqld]
server_id = $((ordinal + SERVER_ID_OFFSET))
report_host = $REPORT_HOST
CNF
mv "$POD_CNF.tmp" "$POD_CNF"

if [ -e "$DATADIR" ]; then
  echo "init: $DATADIR exists; server_id $((ordinal + SERVER_ID_OFFSET))"
  exit 0
fi

# secret FILE: the Secret file's content (without trailing newlines, as the agent reads it) in
# hex. Passwords reach SQL only as hex literals, quoted by the server itself (QUOTE, then
# PREPARE): the servers' init-file readers split statements with their own, simpler idea of
# quoting, and no password may change what a statement does.
secret() {
  [ -s "$SECRETS/$1" ] || { echo "init: $SECRETS/$1 is missing or empty" >&2; exit 1; }
  printf '%s' "$(cat "$SECRETS/$1")" | od -An -tx1 -v | tr -d ' \n'
}

# with_password STATEMENT HEX: STATEMENT followed by the password, as SQL.
with_password() {
  echo "SET @pw = X'$2';"
  echo "SET @stmt = CONCAT(\"$1 \", QUOTE(@pw));"
  echo "PREPARE stmt FROM @stmt;"
  echo "EXECUTE stmt;"
  echo "DEALLOCATE PREPARE stmt;"
}

# Read first: a failure inside an echo's $(...) would not stop the script.
root_pw=$(secret root-password)
admin_pw=$(secret admin-password)
app_pw=
if [ -n "$APP_USER" ]; then app_pw=$(secret app-password); fi

scratch="$DATADIR.init"
rm -rf "$scratch"
sql=$(mktemp)
trap 'rm -f "$sql"' EXIT
{
  # MariaDB runs this file in bootstrap mode, where grant tables are loaded only by a FLUSH.
  if [ "$FLAVOR" = mariadb ]; then echo "FLUSH PRIVILEGES;"; fi
  with_password "CREATE USER '$ADMIN_USER'@'%' IDENTIFIED BY" "$admin_pw"
  echo "GRANT ALL PRIVILEGES ON *.* TO '$ADMIN_USER'@'%' WITH GRANT OPTION;"
  if [ -n "$APP_DATABASE" ]; then
    echo "CREATE DATABASE \`$APP_DATABASE\`;"
  fi
  if [ -n "$APP_USER" ]; then
    with_password "CREATE USER '$APP_USER'@'%' IDENTIFIED BY" "$app_pw"
    if [ -n "$APP_DATABASE" ]; then echo "GRANT ALL PRIVILEGES ON \`$APP_DATABASE\`.* TO '$APP_USER'@'%';"; fi
  fi
  # MariaDB also makes root accounts for the host's names; only the local one stays.
  if [ "$FLAVOR" = mariadb ]; then
    echo "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';"
    echo "FLUSH PRIVILEGES;"
  fi
  with_password "ALTER USER 'root'@'localhost' IDENTIFIED BY" "$root_pw"
} > "$sql"

echo "init: initializing $FLAVOR data dir $DATADIR"
case $FLAVOR in
mysql)
  # gtid_mode OFF: with it on, MySQL records GTIDs for the setup even without a binary log.
  "${MYSQLD:-/usr/sbin/mysqld}" --defaults-file="$DEFAULTS_FILE" --datadir="$scratch" \
    --initialize-insecure --init-file="$sql" --skip-log-bin --gtid-mode=OFF \
    --super-read-only=OFF --read-only=OFF ;;
mariadb)
  "${INSTALL_DB:-/usr/bin/mariadb-install-db}" --defaults-file="$DEFAULTS_FILE" --datadir="$scratch" \
    --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
    --extra-file="$sql" --skip-log-bin --read-only=OFF ;;
*) echo "init: unknown flavor $FLAVOR" >&2; exit 1 ;;
esac
mv "$scratch" "$DATADIR"
echo "init: $DATADIR ready; server_id $((ordinal + SERVER_ID_OFFSET))"
