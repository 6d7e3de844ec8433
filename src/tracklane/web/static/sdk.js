/*! Tracklane browser SDK: clicks from landing-page parameters, a first-party cookie per offer, conversions
 * through the pixel; with an Everflow-compatible `EF` facade. Dependency-free ES2017; no eval, no inline
 * styles, no DOM writes, so it runs under a strict Content-Security-Policy (allow the Tracklane server in
 * script-src, connect-src). Documented in docs/sdk.md. */
(function (window, document) {
  "use strict";

  var VERSION = "1.0.0";
  var DEFAULT_COOKIE_DAYS = 30;
  var LAST_COOKIE = "tl_last"; // the offer id of the most recent click stored on this site

  // Landing-page parameter names, first match wins (Tracklane's names, then Everflow's).
  var NAMES = {
    offer_id: ["offer_id", "oid"],
    partner_id: ["partner_id", "affid", "affiliate_id"],
    transaction_id: ["tl_tid", "transaction_id", "_ef_transaction_id"],
    click_token: ["tl_ct", "click_token"],
    source_id: ["source_id"],
  };
  var SUBS = ["sub1", "sub2", "sub3", "sub4", "sub5"];
  var CONVERSION_FIELDS = ["event_id", "event_name", "order_id", "adv1", "adv2", "adv3", "adv4", "adv5"];

  var script = document.currentScript || document.querySelector('script[src*="/sdk.js"]');
  var config = {
    server: baseOf(script && script.src ? script.src : window.location.href),
    cookieDomain: (script && script.getAttribute("data-cookie-domain")) || "",
    cookieDays: null,
  };
  var pending = {}; // click parameters -> Promise of that click, so that a page view makes it once

  // The server's base URL: the folder the SDK was loaded from (the root, unless a proxy adds a prefix).
  function baseOf(url) {
    try {
      return new URL("./", new URL(url, window.location.href)).href;
    } catch (error) {
      return "";
    }
  }

  function serverBase(server) {
    return baseOf(text(server).replace(/\/?$/, "/"));
  }

  function present(value) {
    return value !== undefined && value !== null && String(value).trim() !== "";
  }

  function text(value) {
    return present(value) ? String(value).trim() : "";
  }

  function urlParameter(name) {
    var value = new URLSearchParams(window.location.search).get(name);
    return value === null ? "" : value;
  }

  function landing(field) {
    var names = NAMES[field] || [field];
    for (var i = 0; i < names.length; i++) {
      var value = urlParameter(names[i]);
      if (present(value)) return value.trim();
    }
    return "";
  }

  // --- cookies: tl_{offer_id} = "<transaction_id>.<mac>" (a click token) or "<transaction_id>" ---

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var pair = parts[i].trim();
      var eq = pair.indexOf("=");
      if (eq > 0 && pair.slice(0, eq) === name) {
        try {
          return decodeURIComponent(pair.slice(eq + 1));
        } catch (error) {
          return "";
        }
      }
    }
    return "";
  }

  function writeCookie(name, value, days) {
    var cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + Math.round(days * 86400) +
      "; Path=/; SameSite=Lax";
    if (config.cookieDomain) cookie += "; Domain=" + config.cookieDomain;
    if (window.location.protocol === "https:") cookie += "; Secure";
    document.cookie = cookie;
  }

  function offerKey(offerId) {
    var id = text(offerId).replace(/^0+/, "");
    return /^[1-9][0-9]{0,18}$/.test(id) ? id : "";
  }

  function storeClick(offerId, transactionId, clickToken, days) {
    var key = offerKey(offerId);
    if (!key || !present(transactionId)) return;
    var token = text(clickToken);
    var value = token && token.split(".")[0] === transactionId ? token : transactionId;
    var lifetime = days || config.cookieDays || DEFAULT_COOKIE_DAYS;
    writeCookie("tl_" + key, value, lifetime);
    writeCookie(LAST_COOKIE, key, lifetime);
  }

  function storedClick(offerId) {
    var key = offerKey(offerId);
    var value = key ? readCookie("tl_" + key) : "";
    if (!value) return null;
    var dot = value.indexOf(".");
    return {
      offer_id: key,
      transaction_id: dot > 0 ? value.slice(0, dot) : value,
      click_token: dot > 0 ? value : "",
    };
  }

  function getTransactionId(offerId) {
    var click = storedClick(offerId);
    return click ? click.transaction_id : null;
  }

  function lastClick() {
    return storedClick(readCookie(LAST_COOKIE));
  }

  // --- requests ---

  function endpoint(path, params, server) {
    var url = new URL(path, server || config.server); // a relative path: under the server's base URL
    Object.keys(params).forEach(function (name) {
      if (present(params[name])) url.searchParams.set(name, text(params[name]));
    });
    return url.toString();
  }

  function amountText(amount) {
    // A string is sent as it is (exact); a number is rounded to 4 decimal places, the most a price keeps.
    if (typeof amount !== "number") return text(amount);
    if (!isFinite(amount)) return "";
    return amount.toFixed(4).replace(/\.?0+$/, "");
  }

  async function createClick(params, server) {
    var response = await fetch(endpoint("clk", params, server), {
      method: "GET", credentials: "omit", cache: "no-store",
    });
    var body = {};
    try {
      body = await response.json();
    } catch (error) {
      body = {}; // not JSON: a proxy's error page
    }
    if (!response.ok || !present(body.transaction_id)) {
      var refused = new Error("Tracklane: the click was refused: " + (body.message || body.error || response.status));
      refused.field = body.field;
      throw refused;
    }
    return body;
  }

  function clickParams(options) {
    var params = {
      offer_id: present(options.offer_id) ? options.offer_id : landing("offer_id"),
      partner_id: present(options.partner_id) ? options.partner_id : landing("partner_id"),
      source_id: present(options.source_id) ? options.source_id : landing("source_id"),
    };
    SUBS.forEach(function (sub) {
      params[sub] = present(options[sub]) ? options[sub] : landing(sub);
    });
    return params;
  }

  /** Record a click (direct linking) and keep it for its offer; resolves with the transaction id. A
   * transaction id (and click token) given, or found on the landing URL, is kept instead of a new click. */
  function click(options, server) {
    options = options || {};
    var params = clickParams(options);
    var key = offerKey(params.offer_id);
    if (!key) return Promise.reject(new Error("Tracklane.click: offer_id is required (a positive integer)"));
    // The landing URL's transaction id and click token are this offer's unless the URL names another offer.
    var landingOffer = offerKey(landing("offer_id"));
    var ours = !landingOffer || landingOffer === key;
    var token = present(options.click_token) ? text(options.click_token) : ours ? landing("click_token") : "";
    var tid = present(options.transaction_id) ? text(options.transaction_id) : ours ? landing("transaction_id") : "";
    if (!tid && token) tid = token.split(".")[0];
    if (tid) {
      var kept = storedClick(key);
      storeClick(key, tid, token || (kept && kept.transaction_id === tid ? kept.click_token : ""));
      return Promise.resolve(tid);
    }
    if (!present(params.partner_id)) {
      return Promise.reject(new Error("Tracklane.click: partner_id is required (a positive integer)"));
    }
    var memo = key + "|" + JSON.stringify(params);
    if (!pending[memo]) {
      pending[memo] = createClick(params, server).then(function (body) {
        storeClick(key, body.transaction_id, body.click_token, body.cookie_days);
        return body.transaction_id;
      });
      pending[memo].catch(function () {
        delete pending[memo];
      });
    }
    return pending[memo];
  }

  /** Convert the offer's stored click (or the most recent one) through the pixel; resolves once it is sent
   * with `{offer_id, transaction_id, sent}` (`sent: false` when no click is stored for the offer). */
  async function conversion(options, server) {
    options = options || {};
    var stored = present(options.offer_id) ? storedClick(options.offer_id) : lastClick();
    var offerId = present(options.offer_id) ? offerKey(options.offer_id) : stored ? stored.offer_id : "";
    if (present(options.offer_id) && !offerId) {
      throw new Error("Tracklane.conversion: offer_id must be a positive integer");
    }
    var tid = present(options.transaction_id) ? text(options.transaction_id) : stored ? stored.transaction_id : "";
    if (!offerId || !tid) return { offer_id: offerId || null, transaction_id: null, sent: false };
    var params = { offer_id: offerId, sdk: VERSION, amount: amountText(options.amount) };
    CONVERSION_FIELDS.forEach(function (name) {
      params[name] = options[name];
    });
    var token = stored && stored.transaction_id === tid ? stored.click_token : "";
    if (token) params.click_token = token;
    // The click token is the proof; without one, the tracking domain's own tl_{offer_id} cookie may be (sent
    // only where the tracking domain is of the same site). `keepalive`: the request outlives a navigation.
    var sent = true;
    try {
      var response = await fetch(endpoint("pixel", params, server), {
        method: "GET", mode: token ? "cors" : "no-cors", credentials: token ? "omit" : "include",
        keepalive: true, cache: "no-store",
      });
      await response.arrayBuffer(); // the whole answer: resolved once the pixel is answered, not just sent
    } catch (error) {
      sent = false;
    }
    return { offer_id: offerId, transaction_id: tid, sent: sent };
  }

  function configure(options) {
    options = options || {};
    if (present(options.server)) config.server = serverBase(options.server);
    if (options.cookieDomain !== undefined) config.cookieDomain = text(options.cookieDomain);
    if (present(options.cookieDays) && Number(options.cookieDays) > 0) config.cookieDays = Number(options.cookieDays);
  }

  // On load: a transaction id (and click token) on the landing URL is kept for its offer; with
  // `data-auto-click` on the script tag, offer and partner ids on the landing URL make the click.
  function start() {
    var offerId = landing("offer_id");
    if (offerKey(offerId) && (landing("transaction_id") || landing("click_token"))) return click({});
    var auto = script && script.hasAttribute("data-auto-click");
    if (auto && offerKey(offerId) && present(landing("partner_id"))) return click({});
    return Promise.resolve(null);
  }

  var Tracklane = {
    version: VERSION,
    configure: configure,
    click: function (options) {
      return click(options);
    },
    conversion: function (options) {
      return conversion(options);
    },
    getTransactionId: getTransactionId,
    urlParameter: urlParameter,
  };
  Tracklane.ready = start().catch(function (error) {
    if (window.console) window.console.warn(error.message);
    return null;
  });

  // --- the Everflow facade: a page written for Everflow's SDK works with only the script URL changed ---

  var efServer = null; // EF.configure({tracking_domain})

  function efTrackingDomain(options) {
    var domain = present(options.tracking_domain) ? options.tracking_domain : efServer;
    if (!present(domain)) return undefined;
    return serverBase(/^https?:\/\//.test(domain) ? domain : "https://" + domain);
  }

  function warn(message) {
    if (window.console) window.console.warn("Tracklane (EF): " + message);
  }

  var EF = {
    configure: function (options) {
      options = options || {};
      if (present(options.tracking_domain)) efServer = options.tracking_domain;
      if (present(options.tld)) config.cookieDomain = text(options.tld);
    },
    /** EF.click({offer_id, affiliate_id, sub1..sub5, source_id, transaction_id, ...}) → Promise of the
     * transaction id ("" when nothing could be tracked, as Everflow's SDK resolves). */
    click: function (options) {
      options = options || {};
      if (options.do_not_track === true) return Promise.resolve("");
      if (!present(options.offer_id) && !present(options.transaction_id)) {
        warn('unable to track: missing "offer_id" or "transaction_id" parameter');
        return Promise.resolve("");
      }
      var mapped = {
        offer_id: options.offer_id,
        partner_id: options.affiliate_id,
        transaction_id: options.transaction_id,
        source_id: options.source_id,
      };
      SUBS.forEach(function (sub) {
        mapped[sub] = options[sub];
      });
      if (!offerKey(mapped.offer_id || landing("offer_id")) && present(mapped.transaction_id)) {
        warn("no offer_id: transaction " + text(mapped.transaction_id) + " is not kept for a conversion");
        return Promise.resolve(text(mapped.transaction_id));
      }
      return click(mapped, efTrackingDomain(options)).catch(function (error) {
        warn(error.message);
        return "";
      });
    },
    /** EF.conversion({offer_id | aid, amount, event_id, order_id, adv1..adv5, transaction_id}) → Promise of
     * `{conversion_id, transaction_id}` (the conversion id is not known in the browser: ""). */
    conversion: function (options) {
      options = options || {};
      if (present(options.adv_event_id) && String(options.adv_event_id) !== "0") {
        // Tracklane's events belong to an offer: recording a base conversion instead would be wrong
        warn("adv_event_id (an advertiser-level event) is not supported: send the offer's event_id");
        return Promise.resolve({ conversion_id: "", transaction_id: "" });
      }
      var mapped = {
        offer_id: options.offer_id,
        transaction_id: options.transaction_id,
        amount: options.amount,
      };
      CONVERSION_FIELDS.forEach(function (name) {
        if (name !== "event_id") mapped[name] = options[name];
      });
      if (present(options.event_id) && String(options.event_id) !== "0") mapped.event_id = options.event_id;
      return conversion(mapped, efTrackingDomain(options)).then(
        function (result) {
          return { conversion_id: "", transaction_id: result.transaction_id || "" };
        },
        function (error) {
          warn(error.message);
          return { conversion_id: "", transaction_id: "" };
        }
      );
    },
    getTransactionId: function (offerId) {
      return getTransactionId(offerId) || "";
    },
    /** The most recent click stored on this site: the advertiser's own pages keep only its offers' clicks. */
    getAdvertiserTransactionId: function () {
      var last = lastClick();
      return last ? last.transaction_id : "";
    },
    urlParameter: urlParameter,
    impression: function () {
      warn("impressions are not tracked by Tracklane");
      return Promise.resolve("");
    },
  };

  window.Tracklane = Tracklane;
  if (!window.EF) window.EF = EF;
})(window, document);
