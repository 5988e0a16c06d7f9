<?php

/**
 * A minimal client for `mail2fa serve` (docs/serve.md): HTTP/1.1 with JSON bodies over a Unix socket, or over
 * loopback TCP with a bearer token. No curl needed (Debian's Roundcube does not pull it in).
 *
 * Every answer that is not a well-formed JSON document from the service — no socket, a timeout, a 5xx, garbage —
 * is a mail2fa_unavailable exception, so the plugin can fail closed in one place.
 */
class mail2fa_unavailable extends Exception
{
}

class mail2fa_response
{
    /** @var int */
    public $status;
    /** @var array */
    public $body;

    public function __construct(int $status, array $body)
    {
        $this->status = $status;
        $this->body = $body;
    }

    /** A 200 with ok:true. */
    public function ok(): bool
    {
        return $this->status === 200 && !empty($this->body['ok']);
    }

    /** error.code (4xx answers) or outcome (negative 200 answers), whichever is present. */
    public function code(): string
    {
        if (isset($this->body['error']['code']) && is_string($this->body['error']['code'])) {
            return $this->body['error']['code'];
        }
        return isset($this->body['outcome']) && is_string($this->body['outcome']) ? $this->body['outcome'] : '';
    }

    public function get(string $key, $default = null)
    {
        return array_key_exists($key, $this->body) ? $this->body[$key] : $default;
    }
}

class mail2fa_client
{
    private const MAX_RESPONSE = 262144;

    private $endpoint;
    private $token;
    private $timeout;
    private $client_name;

    /**
     * @param string      $endpoint `unix:///run/mail2fa/mail2fa.sock` (or a bare absolute path) or `http://127.0.0.1:8025`
     * @param string|null $token    bearer token (TCP only)
     * @param float       $timeout  seconds for connect + answer
     */
    public function __construct(string $endpoint, ?string $token, float $timeout, string $client_name = 'roundcube')
    {
        $this->endpoint = $endpoint;
        $this->token = $token;
        $this->timeout = $timeout;
        $this->client_name = $client_name;
    }

    /** POST a JSON object to a /v1/… path. */
    public function post(string $path, array $body): mail2fa_response
    {
        $json = json_encode((object) $body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        if ($json === false) {
            throw new mail2fa_unavailable('cannot encode the request');
        }
        return $this->request('POST', $path, $json);
    }

    public function health(): mail2fa_response
    {
        return $this->request('GET', '/healthz', null);
    }

    private function request(string $method, string $path, ?string $json): mail2fa_response
    {
        [$target, $host, $tcp] = $this->target();
        $errno = 0;
        $errstr = '';
        $stream = @stream_socket_client($target, $errno, $errstr, $this->timeout);
        if (!$stream) {
            throw new mail2fa_unavailable("cannot connect to mail2fa serve at {$this->endpoint}: $errstr");
        }
        $deadline = microtime(true) + $this->timeout;
        stream_set_timeout($stream, (int) ceil($this->timeout));

        $headers = [
            "$method $path HTTP/1.1",
            "Host: $host",
            'Connection: close',
            'Accept: application/json',
            'Mail2fa-Client: ' . $this->client_name,
        ];
        if ($tcp && $this->token !== null && $this->token !== '') {
            $headers[] = 'Authorization: Bearer ' . $this->token;
        }
        if ($json !== null) {
            $headers[] = 'Content-Type: application/json';
            $headers[] = 'Content-Length: ' . strlen($json);
        }
        $raw = implode("\r\n", $headers) . "\r\n\r\n" . ($json ?? '');
        for ($sent = 0; $sent < strlen($raw);) {
            $n = @fwrite($stream, substr($raw, $sent));
            if ($n === false || $n === 0) {
                fclose($stream);
                throw new mail2fa_unavailable('mail2fa serve closed the connection');
            }
            $sent += $n;
        }

        $response = '';
        while (!feof($stream)) {
            if (microtime(true) > $deadline) {
                fclose($stream);
                throw new mail2fa_unavailable('mail2fa serve did not answer in time');
            }
            $chunk = fread($stream, 8192);
            $meta = stream_get_meta_data($stream);
            if (!empty($meta['timed_out'])) {
                fclose($stream);
                throw new mail2fa_unavailable('mail2fa serve did not answer in time');
            }
            if ($chunk === false) {
                break;
            }
            $response .= $chunk;
            if (strlen($response) > self::MAX_RESPONSE) {
                fclose($stream);
                throw new mail2fa_unavailable('mail2fa serve sent an oversized answer');
            }
        }
        fclose($stream);
        return $this->parse($response);
    }

    /** [stream target, Host header, is TCP] */
    private function target(): array
    {
        $e = $this->endpoint;
        if (strpos($e, 'unix://') === 0) {
            return ['unix://' . substr($e, 7), 'localhost', false];
        }
        if ($e !== '' && $e[0] === '/') {
            return ['unix://' . $e, 'localhost', false];
        }
        $u = parse_url($e);
        if (is_array($u) && ($u['scheme'] ?? '') === 'http' && !empty($u['host'])) {
            $port = $u['port'] ?? 80;
            $host = strpos($u['host'], ':') !== false && $u['host'][0] !== '[' ? '[' . $u['host'] . ']' : $u['host'];
            return ["tcp://$host:$port", "$host:$port", true];
        }
        throw new mail2fa_unavailable('mail2fa_serve must be unix:///path/to/socket or http://127.0.0.1:PORT');
    }

    private function parse(string $response): mail2fa_response
    {
        $split = strpos($response, "\r\n\r\n");
        if ($split === false || !preg_match('#^HTTP/1\.[01] (\d{3})#', $response, $m)) {
            throw new mail2fa_unavailable('mail2fa serve sent no HTTP answer');
        }
        $status = (int) $m[1];
        $head = substr($response, 0, $split);
        $body = substr($response, $split + 4);
        if (preg_match('/^transfer-encoding:\s*chunked\s*$/mi', $head)) {
            $body = $this->dechunk($body);
        }
        $doc = json_decode($body, true);
        if (!is_array($doc)) {
            throw new mail2fa_unavailable("mail2fa serve answered $status without a JSON document");
        }
        // 5xx (503 unavailable, 500 internal): fail closed, whatever the body says.
        if ($status >= 500) {
            throw new mail2fa_unavailable("mail2fa serve answered $status");
        }
        return new mail2fa_response($status, $doc);
    }

    private function dechunk(string $body): string
    {
        $out = '';
        while ($body !== '') {
            $eol = strpos($body, "\r\n");
            if ($eol === false) {
                throw new mail2fa_unavailable('mail2fa serve sent a broken chunked answer');
            }
            $size = hexdec(trim(explode(';', substr($body, 0, $eol))[0]));
            if ($size === 0) {
                break;
            }
            $out .= substr($body, $eol + 2, $size);
            $body = substr($body, $eol + 2 + $size + 2);
        }
        return $out;
    }
}
