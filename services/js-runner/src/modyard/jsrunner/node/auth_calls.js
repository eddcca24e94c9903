'use strict';
// Calls into a module's auth.js (Appmixer's account definitions), asked by the installer
// through the runner (modyard.jsrunner.auth_calls). An auth.js exports
// `{ type: 'apiKey'|'pwd'|'oauth2'|'oauth', definition }` where `definition` is an object or a
// function of `{clientId, clientSecret, callbackUrl}` returning one. Its members are either
// values (`accountNameFromProfileInfo: 'login'`, `authUrl: 'https://…'`) or functions of a
// context holding the credentials (`context.apiKey`, `context.accessToken`…) and
// `context.httpRequest` (the runner's egress-checked client).
//
// Methods:
//   describe  -> { type, fields, scope, authUrl, tokenUrl, refreshUrl, profileUrl, functions }
//   connect   -> { name }    validate() (a rejection or `false` fails), then the account name
//   test      -> { name }    validate()/validateAccessToken(), then the name
//   authorize -> { url }     the sign-in URL a connector computes (authUrl as a function)
//   token     -> { accessToken, refreshToken, expiresAt, … [, name] }  code or refresh grant
//   call      -> { value }   one function member (requestAccessToken, refreshAccessToken, …)

function definitionOf(auth, initData) {
    const found = auth && auth.definition;
    if (typeof found === 'function') return found(initData || {}) || {};
    return found || {};
}

function valueOrNull(value) {
    return typeof value === 'string' || Array.isArray(value) ? value : null;
}

function pathGet(object, path) {
    let value = object;
    for (const part of String(path).split('.')) {
        if (value === null || value === undefined) return undefined;
        value = value[part];
    }
    return value;
}

async function profileOf(definition, context) {
    const source = definition.requestProfileInfo;
    if (typeof source === 'function') return source.call(definition, context);
    if (typeof source === 'string') {
        const response = await context.httpRequest({
            url: source,
            headers: context.accessToken ? { Authorization: `Bearer ${context.accessToken}` } : {},
        });
        return response.data;
    }
    return null;
}

async function nameOf(definition, context) {
    return (await identify(definition, context)).name;
}

// The account's profile (requestProfileInfo) and its name: OAuth accounts keep the profile,
// which components read as context.auth.profileInfo (as Appmixer stores it with the account).
async function identify(definition, context) {
    const profileInfo = await profileOf(definition, context);
    const rule = definition.accountNameFromProfileInfo;
    let name;
    if (typeof rule === 'function') name = await rule.call(definition, Object.assign({}, context, { profileInfo }));
    else if (typeof rule === 'string' && profileInfo) name = pathGet(profileInfo, rule);
    return {
        name: name === undefined || name === null ? null : String(name).slice(0, 255),
        profileInfo: profileInfo === undefined ? null : profileInfo,
    };
}

async function validate(definition, context, member) {
    const check = definition[member];
    if (typeof check !== 'function') return;
    const answer = await check.call(definition, context);
    if (answer === false) throw new Error('the credentials were refused (validate returned false)');
}

// OAuth 2 token endpoint answers (RFC 6749 5.1) or a connector's own
// `{accessToken, refreshToken, accessTokenExpDate}`, in one shape.
function tokensOf(answer, previous) {
    const raw = answer || {};
    const accessToken = raw.accessToken || raw.access_token;
    if (!accessToken) throw new Error('the provider answered without an access token');
    let expiresAt = null;
    if (raw.accessTokenExpDate) expiresAt = new Date(raw.accessTokenExpDate).toISOString();
    else if (raw.expires_in || raw.expiresIn) {
        expiresAt = new Date(Date.now() + Number(raw.expires_in || raw.expiresIn) * 1000).toISOString();
    }
    return {
        accessToken: String(accessToken),
        refreshToken: String(raw.refreshToken || raw.refresh_token || previous || '') || null,
        tokenType: raw.token_type || raw.tokenType || 'Bearer',
        scope: raw.scope || null,
        expiresAt,
    };
}

async function postForm(context, url, fields) {
    const body = new URLSearchParams();
    for (const [key, value] of Object.entries(fields)) {
        if (value !== undefined && value !== null && value !== '') body.append(key, String(value));
    }
    const response = await context.httpRequest({
        url,
        method: 'POST',
        data: body.toString(),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    });
    return typeof response.data === 'string' ? Object.fromEntries(new URLSearchParams(response.data)) : response.data;
}

// The authorization code (with its PKCE verifier) or the refresh token for new tokens, at the
// connector's endpoint or through its own function; the account's name comes with a new code.
async function exchange(definition, context) {
    if (context.grant === 'refresh_token') {
        const own = definition.refreshAccessToken;
        const answer =
            typeof own === 'function'
                ? await own.call(definition, context)
                : await postForm(context, context.tokenUrl || valueOrNull(own) || definition.requestAccessToken, {
                      grant_type: 'refresh_token',
                      refresh_token: context.refreshToken,
                      client_id: context.clientId,
                      client_secret: context.clientSecret,
                  });
        return tokensOf(answer, context.refreshToken);
    }
    const own = definition.requestAccessToken;
    const answer =
        typeof own === 'function'
            ? await own.call(definition, context)
            : await postForm(context, context.tokenUrl || own, {
                  grant_type: 'authorization_code',
                  code: context.authorizationCode,
                  redirect_uri: context.callbackUrl,
                  client_id: context.clientId,
                  client_secret: context.clientSecret,
                  code_verifier: context.codeVerifier,
              });
    const tokens = tokensOf(answer);
    const { name, profileInfo } = await identify(
        definition,
        Object.assign({}, context, { accessToken: tokens.accessToken })
    );
    return Object.assign(tokens, { name, profileInfo });
}

// OAuth 1.0a (Appmixer's `type: 'oauth'`): the connector's own functions do the signed calls
// (a vendor SDK, usually); the definition gets {consumerKey, consumerSecret, callbackUrl}.
async function oauth1Start(definition, context) {
    if (typeof definition.requestRequestToken !== 'function') {
        throw new TypeError('an OAuth 1.0a auth.js needs a requestRequestToken() function');
    }
    const found = (await definition.requestRequestToken.call(definition, context)) || {};
    const requestToken = found.requestToken || found.oauth_token;
    const requestTokenSecret = found.requestTokenSecret || found.oauth_token_secret;
    if (!requestToken) throw new Error('the provider gave no request token');
    const withToken = Object.assign({}, context, { requestToken, requestTokenSecret });
    const url =
        typeof definition.authUrl === 'function'
            ? await definition.authUrl.call(definition, withToken)
            : `${definition.authUrl}${String(definition.authUrl).includes('?') ? '&' : '?'}oauth_token=${encodeURIComponent(requestToken)}`;
    return { url: String(url), requestToken: String(requestToken), requestTokenSecret: String(requestTokenSecret || '') };
}

async function oauth1Finish(definition, context) {
    if (typeof definition.requestAccessToken !== 'function') {
        throw new TypeError('an OAuth 1.0a auth.js needs a requestAccessToken() function');
    }
    const found = (await definition.requestAccessToken.call(definition, context)) || {};
    const accessToken = found.accessToken || found.oauth_token;
    const accessTokenSecret = found.accessTokenSecret || found.oauth_token_secret;
    if (!accessToken) throw new Error('the provider gave no access token');
    const tokens = { accessToken: String(accessToken), accessTokenSecret: String(accessTokenSecret || '') };
    const { name, profileInfo } = await identify(definition, Object.assign({}, context, tokens));
    return Object.assign(tokens, { name, profileInfo });
}

class InvalidTokenError extends Error {
    constructor(message) {
        super(message || 'invalid token');
        this.name = 'InvalidTokenError';
        this.invalidToken = true;
    }
}

async function dispatch(call, httpRequest, log) {
    // eslint-disable-next-line global-require, import/no-dynamic-require
    const auth = require(call.entry);
    const definition = definitionOf(auth, call.initData);
    const context = Object.assign({}, call.context || {}, { httpRequest, log, InvalidTokenError });
    switch (call.authMethod) {
        case 'describe': {
            const functions = Object.keys(definition).filter((key) => typeof definition[key] === 'function');
            return {
                type: String((auth && auth.type) || ''),
                fields: definition.auth && typeof definition.auth === 'object' ? definition.auth : {},
                scope: valueOrNull(definition.scope),
                authUrl: valueOrNull(definition.authUrl),
                tokenUrl: valueOrNull(definition.requestAccessToken),
                refreshUrl: valueOrNull(definition.refreshAccessToken),
                profileUrl: valueOrNull(definition.requestProfileInfo),
                accountNameFromProfileInfo: valueOrNull(definition.accountNameFromProfileInfo),
                functions,
            };
        }
        case 'connect':
            await validate(definition, context, 'validate');
            return { name: await nameOf(definition, context) };
        case 'test':
            await validate(definition, context, 'validate');
            await validate(definition, context, 'validateAccessToken');
            return { name: await nameOf(definition, context) };
        case 'authorize': {
            // A connector that computes its sign-in URL (authUrl as a function): it gets the
            // state as Appmixer's `ticket`; the installer adds PKCE to what it returns.
            if (typeof definition.authUrl !== 'function') return { url: valueOrNull(definition.authUrl) };
            return { url: String(await definition.authUrl.call(definition, context)) };
        }
        case 'token':
            return exchange(definition, context);
        case 'oauth1-start':
            return oauth1Start(definition, context);
        case 'oauth1-finish':
            return oauth1Finish(definition, context);
        case 'call': {
            const member = definition[call.member];
            if (typeof member !== 'function') throw new TypeError(`auth.js has no ${call.member}() function`);
            const value = await member.call(definition, context);
            return { value: value === undefined ? null : value };
        }
        default:
            throw new TypeError(`unknown auth call ${call.authMethod}`);
    }
}

// The vendor's own words when it answered with an error body (an axios error says only
// "Request failed with status code 401").
function vendorError(err) {
    const response = err && err.response;
    const data = response && response.data;
    let message;
    if (typeof data === 'string' && data.trim()) message = data.trim();
    else if (data && typeof data === 'object') {
        const nested = data.error && typeof data.error === 'object' ? data.error.message : data.error;
        message = data.message || data.error_description || nested;
    }
    if (!message) return err;
    const wrapped = new Error(String(message).slice(0, 1024));
    wrapped.status = response.status;
    return wrapped;
}

async function runAuthCall(call, httpRequest, log) {
    try {
        return await dispatch(call, httpRequest, log);
    } catch (err) {
        throw vendorError(err);
    }
}

module.exports = { runAuthCall };
